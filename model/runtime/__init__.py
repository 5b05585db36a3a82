"""Runtime layer: the services container that wires settings to the database, object store and registry, the
clients of the orchestrator and the traffic recorder, and the MLflow server's side: Sprout's basic-auth app and
the API's own login on it."""
