"""Label names are data: any folder-per-label set works, as long as the names are safe keys."""

import re

from model.core.errors import InvalidLabelError

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_label(label: str) -> str:
    """Return ``label`` stripped, or raise if it cannot be a storage path segment."""
    label = label.strip()
    if not _LABEL_RE.match(label):
        raise InvalidLabelError(
            f"Invalid label {label!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit."
        )
    return label
