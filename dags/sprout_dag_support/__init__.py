"""What the Sprout DAG files share (Airflow's modules-management guidance: a uniquely named package in the DAGs
folder, listed in ``.airflowignore``): settings, the tasks that run the ``sprout`` CLI, task pods, and the training
DAGs' own tasks."""
