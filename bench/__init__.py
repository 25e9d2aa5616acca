"""Benchmarks of airflow-provider-modelreg (`make bench` writes out/bench/results.json; `make benchmarks-md`
renders BENCHMARKS.md from the recorded runs)."""
