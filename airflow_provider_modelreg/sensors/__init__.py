"""sensors of airflow-provider-modelreg."""
