"""The one family of errors a user can fix: bad input or a missing resource.

Shells (the CLI, the app) show a `UserError`'s message as it is, with no traceback; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing resource. The message says what went wrong and how to fix it."""
