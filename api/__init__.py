"""FastAPI service (serving and review) — built on model.serving.predictor and model.data.samples."""
