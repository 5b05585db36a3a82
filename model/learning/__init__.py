"""Learning layer: backbones, embeddings, head training, evaluation, the gate and the training pipeline.

torch is imported only inside the functions that need it, so importing this package is cheap.
"""
