"""The ``sprout`` command line (the entry point ``model.cli:app``). With ``--json`` (before or after the command
name) every command prints exactly one JSON object on stdout.

``main`` holds the app: its global options and the list of commands; ``data``, ``training``, ``scoring``,
``reports`` and ``admin`` hold the commands by what they are about; ``output`` is how every command answers
(JSON or lines, errors and exit codes, progress bars); ``invocation`` is what one run carries (its answer's
form and its services)."""

from model.cli.main import app

__all__ = ["app"]
