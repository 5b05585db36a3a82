"""Runtime layer: the services container that wires settings to the database, object store and registry."""
