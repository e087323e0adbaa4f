"""Argument checks shared by the public functions (each caller words its own error)."""

from __future__ import annotations

from typing import Any

import numpy as np


def whole(value: Any, minimum: int | None = None) -> bool:
    """Whether ``value`` is a whole number -- a Python or numpy integer, not a ``bool`` -- of at
    least ``minimum`` when given (``"2"``, ``2.0`` and ``True`` are not)."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    return ok and (minimum is None or value >= minimum)


def size_hw(size: Any) -> bool:
    """Whether ``size`` is an ``(H, W)`` pair of whole numbers (a tuple or a list)."""
    return isinstance(size, (tuple, list)) and len(size) == 2 and all(whole(x) for x in size)
