"""At most one pending CLIP job per session: a client cannot fill the shared queue by itself.

Gradio's queue bounds its total size (`max_size`) and runs each concurrency id `concurrency_limit`
jobs at a time, but one client can still enqueue `max_size` jobs and make every other user wait
behind them. This wraps the queue's `push` (where a job joins) so that a session with a job of
the guarded concurrency id waiting or running gets HTTP 400 with a message, at once.
MCP tool calls come through the same push (Gradio's MCP server calls the queue through a
`gradio_client` that sends `x-gradio-user: mcp`, one session for all of them); their refusal
takes the validation-error form, the only one whose message reaches an MCP client.
Relies on gradio 6's `Queue.push` and `Queue.event_ids_to_events` (checked in tests).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import gradio as gr

GRACE_S = 0.5  # how long a second job waits for the session's previous one to leave the queue's table
MESSAGE = ("This session already has a CLIP job waiting or running; wait for it to finish (one "
           "indexing job per session keeps the queue fair for everyone).")
MCP_NOTE = " All MCP tool calls to this server share one session: call the tools one at a time."


def one_job_per_session(demo: gr.Blocks, concurrency_id: str = "model", limit: int = 1) -> None:
    """Refuse a session's new job of `concurrency_id` while it has `limit` such jobs pending.

    Call after `demo.queue(...)`.
    """
    queue = demo._queue
    push = queue.push

    def pending(session: str) -> int:
        return sum(1 for e in list(queue.event_ids_to_events.values())
                   if e.session_hash == session and e.concurrency_id == concurrency_id)

    async def guarded_push(body: Any, request: Any, username: Any) -> Any:
        session = getattr(body, "session_hash", None)
        fn = _fn_of(queue, body)
        if session and fn is not None and fn.concurrency_id == concurrency_id:
            # A finished job leaves the queue's table a few awaits after its client hears it is done,
            # so a client that asks again at once must not be refused: wait that moment out first.
            deadline = time.monotonic() + GRACE_S
            while pending(session) >= limit and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if pending(session) >= limit:
                return _refusal(request)
        return await push(body=body, request=request, username=username)

    queue.push = guarded_push


def _refusal(request: Any) -> tuple[bool, Any, str]:
    """The push's refusal: a message (HTTP 400) for the browser and clients, a validation error for MCP."""
    headers = getattr(request, "headers", None) or {}
    if headers.get("x-gradio-user") == "mcp":  # a client may send it too: it only changes the wording
        return False, [{"__type__": "validate", "is_valid": False, "message": MESSAGE + MCP_NOTE,
                        "parameter_name": "queue"}], "validator_error"
    return False, MESSAGE, "error"


def _fn_of(queue: Any, body: Any) -> Any:
    """The event's function, or None when the body names none (the queue then refuses it itself)."""
    try:
        from gradio import route_utils

        return route_utils.get_fn(queue.blocks, None, body)
    except Exception:  # noqa: BLE001 - an unknown index: leave the answer to gradio's own push
        return None
