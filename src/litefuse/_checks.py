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


def parse_wxh(text: str) -> tuple[int, int]:
    """``"640x480"`` (or ``640×480``) -> ``(640, 480)``, width first; ``ValueError`` otherwise."""
    w, sep, h = str(text).lower().replace("×", "x").partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit():
        raise ValueError(f"expected WxH (e.g. 640x480), got {text!r}")
    return int(w), int(h)


def WxH(text: str) -> str:  # noqa: N802 - argparse names the type in its message: "invalid WxH value"
    """argparse ``type=`` for a ``--size WxH`` option: the text as given, once :func:`parse_wxh`
    reads it and each side is an image's least (:data:`litefuse.io.MIN_SIDE`), so a bad size is
    argparse's one-line usage error instead of a traceback later."""
    import argparse

    from .io import MIN_SIDE

    if min(parse_wxh(text)) < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: each side must be at least {MIN_SIDE} (e.g. 640x480)")
    return text
