"""One browser tab of a served app, speaking Gradio's own protocol as the page's JavaScript does.

The app's UI events are private (`gradio_client` may not call them), so the fault suite drives
them like the page: files go to `/gradio_api/upload`, queued events join `/gradio_api/queue/join`
and are read from its event stream, unqueued ones post to `/gradio_api/run/predict`. A `gr.State`
input is sent as null: the server holds the tab's state under its session hash.
"""

from __future__ import annotations

import json
import mimetypes
import urllib.request
import uuid
from pathlib import Path
from typing import Any


class UiError(Exception):
    """The event ended with an error (a `gr.Error`): its message."""


def _post(url: str, body: bytes, content_type: str, timeout: float) -> Any:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class Tab:
    """A tab of the app at `url` (a session hash of its own).

    Args:
        url: the app's root URL, ending in "/".
        config: the app's /config (read once and shared between tabs, or fetched here).
    """

    def __init__(self, url: str, config: dict | None = None) -> None:
        self.url, self.session = url, uuid.uuid4().hex[:11]
        self.config = config or json.loads(urllib.request.urlopen(f"{url}config", timeout=30).read())
        self._deps = {d["api_name"]: d for d in self.config["dependencies"] if d.get("api_name")}

    def upload(self, path: str | Path) -> dict:
        """Upload a file as the image box does; its FileData for the next event."""
        path, boundary = Path(path), uuid.uuid4().hex
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
                f"Content-Type: {kind}\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        (server_path,) = _post(f"{self.url}gradio_api/upload", body, f"multipart/form-data; boundary={boundary}", 60)
        return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api_name: str, *data: Any, event_data: dict | None = None, timeout: float = 120) -> list:
        """Run the event named `api_name` with these inputs; its last outputs (State outputs as null)."""
        dep = self._deps[api_name]
        body = {"data": list(data), "event_data": event_data, "fn_index": dep["id"], "trigger_id": None,
                "session_hash": self.session}
        if not dep.get("queue", True):
            return _post(f"{self.url}gradio_api/run/predict", json.dumps(body).encode(), "application/json",
                         timeout)["data"]
        event = _post(f"{self.url}gradio_api/queue/join", json.dumps(body).encode(), "application/json",
                      timeout)["event_id"]
        last = None
        with urllib.request.urlopen(f"{self.url}gradio_api/queue/data?session_hash={self.session}",
                                    timeout=timeout) as stream:
            for raw in stream:
                line = raw.decode().strip()
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") not in (None, event):
                    continue  # a message of an earlier event of this tab
                if msg.get("msg") == "process_generating" and msg["output"].get("data") is not None:
                    last = msg["output"]["data"]
                if msg.get("msg") == "process_completed":
                    out = msg.get("output", {})
                    if not msg.get("success", True) or out.get("error"):
                        raise UiError(str(out.get("error")))
                    return out.get("data") or last or []
        raise UiError(f"the event stream of {api_name} ended without a result")
