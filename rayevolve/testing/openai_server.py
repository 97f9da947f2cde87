"""A scripted OpenAI-protocol server on loopback, for tests and benchmarks.

It answers ``GET /v1/models`` and ``POST /v1/chat/completions`` like `vllm serve` would,
after a configurable latency and with at most `max_concurrent` requests served at once
(the rest queue, as on a busy model server). Replies come from a script (a queue of
`Reply` values: content, HTTP errors, delays, dropped connections), then from a
`responder` function; the default responder returns a valid SEARCH/REPLACE edit that
perturbs a numeric literal of the program in the prompt, so an evolutionary run works
against it. Every request is recorded with its arrival, start and end times.

    with ScriptedOpenAIServer(models=["tiny"], latency_s=0.1) as server:
        ...  # mutation.base_url=server.base_url mutation.model=tiny
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rayevolve.config import OfflineMutationConfig
from rayevolve.edits import make_diff
from rayevolve.mutation.offline import MutationUnavailable, OfflineBackend
from rayevolve.program import START_MARKER

_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
      content: the assistant message (one per choice; repeated for ``n`` > 1).
      status: HTTP status; anything but 200 sends an OpenAI-style error body.
      delay_s: latency of this reply (None: the server's).
      finish_reason: ``stop`` or ``length``.
      drop: close the connection without answering.
    """

    content: str = ""
    status: int = 200
    delay_s: float | None = None
    finish_reason: str = "stop"
    drop: bool = False


@dataclass
class RecordedRequest:
    path: str
    body: dict
    headers: dict[str, str]  # names in lower case
    arrived: float
    started: float = 0.0
    ended: float = 0.0
    status: int = 0


def program_in(messages: list[dict]) -> str | None:
    """The first fenced code block with an EVOLVE-BLOCK in the last user message (the
    parent, in rayevolve's default prompt)."""
    users = [m["content"] for m in messages if m.get("role") == "user"]
    for text in reversed(users):
        for block in _FENCE.findall(text):
            if START_MARKER in block:
                return block
    return None


def perturbing_responder(
    seed: int = 0, locate: Callable[[list[dict]], str | None] = program_in
) -> Callable[[dict], Reply]:
    """Answers with a SEARCH/REPLACE edit that perturbs a numeric literal of the parent,
    which `locate` finds in the request's messages (another system's prompt layout may
    need its own)."""
    backend = OfflineBackend(OfflineMutationConfig())
    rng = random.Random(seed)
    lock = threading.Lock()

    def respond(body: dict) -> Reply:
        code = locate(body.get("messages", []))
        if code is None:
            return Reply("I see no program to change.")
        with lock:
            local = random.Random(rng.random())
        try:
            child = backend.perturb(code, "python", local)
        except MutationUnavailable:
            return Reply("There is no numeric literal to change.")
        return Reply("Tuning a constant.\n\n" + make_diff(code, child))

    return respond


class ScriptedOpenAIServer:
    """See the module docstring. Use as a context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        models: Iterable[str] = ("scripted",),
        *,
        latency_s: float = 0.0,
        max_concurrent: int = 64,
        responder: Callable[[dict], Reply] | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.models = list(models)
        self.latency_s = latency_s
        self.responder = responder or perturbing_responder()
        self.api_key = api_key
        self.script: deque[Reply] = deque()
        self.requests: list[RecordedRequest] = []
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._active = 0
        self.peak_concurrency = 0
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def enqueue(self, *replies: Reply) -> None:
        """Replies for the next chat requests, in order (then the responder's)."""
        with self._lock:
            self.script.extend(replies)

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self) -> ScriptedOpenAIServer:
        # a short poll: stop() waits for the serving loop to notice, 0.5 s by default
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- serving --------------------------------------------------------------------
    def _next_reply(self, body: dict) -> Reply:
        with self._lock:
            if self.script:
                return self.script.popleft()
        return self.responder(body)

    def _completion(self, body: dict, reply: Reply) -> dict:
        n = int(body.get("n") or 1)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(reply.content.split())
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
                for i in range(n)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens * n,
                "total_tokens": prompt_tokens + completion_tokens * n,
            },
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: with Nagle's algorithm the body waits
            # for the client's delayed ACK of the headers, 40 ms per request on Linux
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, kind: str) -> None:
                self._send(status, {"error": {"message": message, "type": kind, "code": status}})

            def _authorised(self) -> bool:
                if server.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.api_key}":
                    return True
                self._error(401, "Incorrect API key provided", "authentication_error")
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    data = [
                        {"id": m, "object": "model", "owned_by": "rayevolve"} for m in server.models
                    ]
                    self._send(200, {"object": "list", "data": data})
                else:
                    self._error(404, f"no route {self.path}", "not_found")

            def do_POST(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = RecordedRequest(self.path, {}, headers, time.monotonic())
                with server._lock:
                    server.requests.append(record)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    record.body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    record.status = 400
                    self._error(400, "the body is not JSON", "invalid_request_error")
                    return
                if not self._authorised():
                    record.status = 401
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    record.status = 404
                    self._error(404, f"no route {self.path}", "not_found")
                    return
                if record.body.get("model") not in server.models:
                    record.status = 404
                    self._error(
                        404,
                        f"The model `{record.body.get('model')}` does not exist.",
                        "NotFoundError",
                    )
                    return
                with server._slots:  # at most max_concurrent served at once
                    with server._lock:
                        server._active += 1
                        server.peak_concurrency = max(server.peak_concurrency, server._active)
                    record.started = time.monotonic()
                    try:
                        reply = server._next_reply(record.body)
                        delay = server.latency_s if reply.delay_s is None else reply.delay_s
                        if delay > 0:
                            time.sleep(delay)
                    finally:
                        with server._lock:
                            server._active -= 1
                    record.ended = time.monotonic()
                record.status = reply.status
                if reply.drop:
                    self.close_connection = True
                    self.connection.close()
                elif reply.status != 200:
                    self._error(reply.status, reply.content or "scripted error", "server_error")
                else:
                    self._send(200, server._completion(record.body, reply))

        return Handler
