"""The served model's contract: tensor names and metadata keys of Sprout's fused ONNX graph.

Input ``pixels``: preprocessed float32 NCHW with a dynamic batch. Outputs ``probabilities``: (N, classes),
``features``: (N, embedding_dim), the backbone embedding, and ``unfamiliarity``: (N,), the cosine distance to the
nearest label centroid of the training embeddings (graphs from before each have only the outputs before it).
The metadata carries the labels (column order of ``probabilities``), the preprocessing and, since issue 23, the
abstain thresholds and the unfamiliarity threshold (``model.serving.guards``). No onnx here.
"""

INPUT_NAME = "pixels"
FEATURES_NAME = "features"
OUTPUT_NAME = "probabilities"
UNFAMILIARITY_NAME = "unfamiliarity"
OPSET = 17

HEAD_WEIGHT = "head_weight"
HEAD_BIAS = "head_bias"
REFERENCE = "familiar_reference"  # the label centroids (L2-normalised, transposed) unfamiliarity is measured to

META_LABELS = "sprout.labels"
META_PREPROCESS = "sprout.preprocess"
META_INPUT_SIZE = "sprout.input_size"
META_EMBEDDING_DIM = "sprout.embedding_dim"
META_BACKBONE = "sprout.backbone"
META_TRAINING_RUN = "sprout.training_run"
META_ABSTAIN = "sprout.abstain"  # JSON: precision target, per-label confidence thresholds, coverage
META_UNFAMILIAR = "sprout.unfamiliar"  # JSON: unfamiliarity threshold, reference size
