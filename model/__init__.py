"""Sprout's domain logic: storage, samples, backbones, training, evaluation, gate, registry, export.

Importing this package is cheap: torch is imported only by the modules that train or export.
"""
