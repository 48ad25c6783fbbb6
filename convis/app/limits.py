"""Bounds on what a client may send, checked at the edge, and messages made safe to send back.

A public server gets megabyte strings, negative or infinite numbers and unknown names; each gets
a short error that names the limit, before any work is done.
"""

from __future__ import annotations

import math
import re
from typing import Any

from convis.engine import MAX_TEXT  # the one text limit: phrases, concept names, search queries
from convis.errors import UserError

MAX_WORD = 40  # a style, colormap or other name from a short list
# An absolute path, not part of a URL or an "arch/tag" name: "/tmp/gradio/ab12/cat.jpg" -> "cat.jpg".
_PATH = re.compile(r"(?<![\w:/.~-])(?:[A-Za-z]:)?(?:[/\\][^\s'\"/\\]+)+[/\\]([^\s'\"/\\]+)")


class BadRequest(UserError, ValueError):
    """A request value outside its bounds; the message names the bound."""


def text(value: Any, what: str, max_chars: int = MAX_TEXT) -> str:
    """`value` as a string of at most `max_chars` characters (None -> "")."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be text, got {type(value).__name__}")
    if len(value) > max_chars:
        hint = " Send a concept name such as 'dog.n.01' or a word such as 'dog'." if max_chars >= MAX_TEXT else ""
        raise BadRequest(f"{what} is {len(value):,} characters long; the limit is {max_chars}.{hint}")
    return value


def whole(value: Any, what: str, lo: int, hi: int) -> int:
    """`value` as an int in [lo, hi]; whole floats (10.0 from a number box) are accepted."""
    shown = repr(value)[:40]
    if isinstance(value, str):
        value = text(value, what, MAX_WORD)
        try:
            value = float(value)
        except ValueError:
            raise BadRequest(f"{what} must be a whole number from {lo} to {hi}, got {shown}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{what} must be a whole number from {lo} to {hi}, got {shown}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise BadRequest(f"{what} must be a whole number from {lo} to {hi}, got {shown}")
    if not lo <= value <= hi:
        raise BadRequest(f"{what} must be from {lo} to {hi}, got {shown}")
    return int(value)


def number(value: Any, what: str, lo: float, hi: float) -> float:
    """`value` as a finite float in [lo, hi]."""
    if isinstance(value, str):
        value = text(value, what, MAX_WORD)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{what} must be a number from {lo:g} to {hi:g}, got {repr(value)[:40]}") from None
    if not (math.isfinite(x) and lo <= x <= hi):
        raise BadRequest(f"{what} must be a number from {lo:g} to {hi:g}, got {repr(value)[:40]}")
    return x


def public(message: str) -> str:
    """A message with every absolute server path cut to its last part (the file's own name)."""
    return _PATH.sub(r"\1", message)
