"""The ``sprout`` command line (the entry point ``model.cli:app``). With ``--json`` (before or after the command
name) every command prints exactly one JSON object on stdout.

``app`` holds the global options and lists the commands; ``data``, ``training``, ``scoring``, ``reports`` and
``admin`` hold them by what they are about; ``output`` is how every command answers (JSON or lines, errors and
exit codes, progress bars); ``invocation`` is what one run carries (its answer's form and its services)."""

from model.cli.app import app

__all__ = ["app"]
