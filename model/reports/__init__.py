"""Reports layer: read models (dataclasses) for ``sprout status``, the model history and batch predictions."""
