"""FastAPI service (serving and review) — built on model.predictor and model.samples."""
