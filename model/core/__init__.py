"""Foundation layer: settings, errors, login tokens and accounts. Imports nothing else of Sprout but ``db``."""
