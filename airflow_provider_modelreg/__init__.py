"""Apache Airflow provider for the Alibaba Cloud PAI and Huawei Cloud DataArts Fabric model registries."""

# The one place the version is written: pyproject.toml reads it (dynamic version) and get_provider_info returns it.
__version__ = "0.1.0"
