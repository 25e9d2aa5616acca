"""triggers of airflow-provider-modelreg."""
