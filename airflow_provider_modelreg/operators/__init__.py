"""operators of airflow-provider-modelreg."""
