"""Example DAGs of airflow-provider-modelreg (also the DAGs folder of `make demo`)."""
