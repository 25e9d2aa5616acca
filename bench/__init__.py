"""Benchmarks of airflow-provider-modelreg (run with `make bench`; results in BENCHMARKS.md)."""
