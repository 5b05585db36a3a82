"""Airflow DAGs of Sprout. They run the ``sprout`` CLI and import nothing of Sprout (import-linter checks)."""
