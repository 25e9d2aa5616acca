"""Apache Airflow provider for the Alibaba Cloud PAI and Huawei Cloud DataArts Fabric model registries."""

__version__ = "0.1.0"
