"""The served model's contract: tensor names and metadata keys of Sprout's fused ONNX graph.

Input ``pixels``: preprocessed float32 NCHW with a dynamic batch. Outputs ``probabilities``: (N, classes) and
``features``: (N, embedding_dim), the backbone embedding (graphs from before it have the first only).
The metadata carries the labels (column order of ``probabilities``) and the preprocessing. No onnx here.
"""

INPUT_NAME = "pixels"
FEATURES_NAME = "features"
OUTPUT_NAME = "probabilities"
OPSET = 17

HEAD_WEIGHT = "head_weight"
HEAD_BIAS = "head_bias"

META_LABELS = "sprout.labels"
META_PREPROCESS = "sprout.preprocess"
META_INPUT_SIZE = "sprout.input_size"
META_EMBEDDING_DIM = "sprout.embedding_dim"
META_BACKBONE = "sprout.backbone"
META_TRAINING_RUN = "sprout.training_run"
