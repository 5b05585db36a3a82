"""Serving layer: the ONNX contract, the ONNX Runtime predictor, the MLflow registry, the champion watcher,
the Airflow client. The predictor path never imports torch or onnx."""
