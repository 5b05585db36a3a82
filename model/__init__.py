"""Sprout's domain logic, in layers (each imports only the ones below it; import-linter checks this):

``cli`` → ``reports`` → ``learning`` → ``runtime`` → ``serving`` → ``data`` → ``core`` → ``db``.

Importing this package is cheap: torch is imported only by the functions that train or export.
"""
