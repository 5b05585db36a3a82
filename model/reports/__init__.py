"""Reports layer: read models (dataclasses) for ``sprout status``, the model history and telemetry."""
