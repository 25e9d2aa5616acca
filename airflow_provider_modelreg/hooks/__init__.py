"""hooks of airflow-provider-modelreg."""
