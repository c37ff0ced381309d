"""Label normalisation shared by the losses and evaluation (no paddle here)."""

from __future__ import annotations

import string

ALNUM = string.ascii_lowercase + string.digits


def filter_label(label: str) -> str:
    """Lower-case and keep letters and digits: how TextZoom labels are compared and recognized."""
    return "".join(c for c in label.lower() if c in ALNUM)
