"""Local HTTP servers that speak the real Gemini and OpenAI wire formats, for tests.

The real SDKs (google-genai, openai) talk to these, so a test exercises lem's client
code, the SDK and HTTP, and only the model is fake. Each server answers from a queue
of scripted `Reply`s first, then from a `responder` function, and records every
request it received.

    with FakeGemini() as server:
        server.enqueue(Reply(status=429, headers={"Retry-After": "3"}), Reply(text="hi"))
        client = make_client("gemini/m", base_url=server.base_url)

`mlx_server(model_dir)` starts a real `mlx_lm server` for end-to-end tests of local judges.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer. A non-200 `status` sends the provider's error body.

    `text=None` with status 200 sends an answer without text (an empty response);
    `body` (str or dict) replaces the whole body, for garbage or odd shapes.
    `finish` is the provider's own finish reason ("STOP"/"MAX_TOKENS", "stop"/"length").
    """

    text: str | None = "ok"
    status: int = 200
    headers: dict = field(default_factory=dict)
    finish: str | None = None
    body: str | dict | None = None
    message: str = "scripted error"
    prompt_tokens: int = 7
    completion_tokens: int | None = None  # default: words in `text`


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict  # lower-case names
    json: dict
    system: str  # system text, joined
    user: str  # the last user turn's text

    @property
    def text(self) -> str:
        """System and user text together (for responders that look at the whole prompt)."""
        return f"{self.system}\n{self.user}".strip()


Responder = Callable[[Received], "Reply | str"]


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 (port 0) with scripted replies; a context manager."""

    def __init__(self, responder: Responder | None = None, delay: float = 0.0) -> None:
        self.responder = responder or (lambda received: Reply())
        self.delay = delay
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests handled at once (checks concurrency)
        self._queue: deque[Reply | str] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # The subclass's wire format
    def parse(self, path: str, headers: dict, body: dict) -> Received | None:
        """Read a request; None for a path this API does not serve."""
        raise NotImplementedError

    def answer(self, received: Received, reply: Reply) -> dict:
        """The success body for `reply`."""
        raise NotImplementedError

    def error(self, reply: Reply) -> dict:
        """The provider's error body for `reply.status`."""
        raise NotImplementedError

    # Scripting
    def enqueue(self, *replies: Reply | str) -> None:
        """Queue replies (a plain string is `Reply(text=...)`) served before the responder."""
        with self._lock:
            self._queue.extend(replies)

    def _next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            scripted = self._queue.popleft() if self._queue else None
        reply = scripted if scripted is not None else self.responder(received)
        return Reply(text=reply) if isinstance(reply, str) else reply

    @contextlib.contextmanager
    def _counting(self) -> Iterator[None]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    # Lifecycle
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        handler = _make_handler(self)
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops connections when many clients start at once.
    request_queue_size = 128


def _make_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return self._send(400, {"error": {"message": "body is not JSON"}})
            received = fake.parse(self.path, headers, body)
            if received is None:
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            with fake._counting():
                reply = fake._next_reply(received)
                if fake.delay:
                    time.sleep(fake.delay)
            if reply.body is not None:
                return self._send(reply.status, reply.body, reply.headers)
            if reply.status != 200:
                return self._send(reply.status, fake.error(reply), reply.headers)
            self._send(200, fake.answer(received, reply), reply.headers)

        def _send(self, status: int, body: dict | str, headers: dict | None = None) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, str(value))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout test)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


def _completion_tokens(reply: Reply) -> int:
    if reply.completion_tokens is not None:
        return reply.completion_tokens
    return len(reply.text.split()) if reply.text else 0


GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class FakeGemini(FakeServer):
    """`POST /v1beta/models/<model>:generateContent` (and `/v1/...`), key in `x-goog-api-key`.

    google-genai 3.x with a custom base_url posts to `/v1/models/<model>:generateContent`
    with camelCase JSON: contents, systemInstruction, generationConfig
    (temperature, maxOutputTokens, seed, responseMimeType, responseSchema).
    `api_key`, when given, is checked like the real API does (400 API_KEY_INVALID).
    """

    def __init__(self, responder=None, delay: float = 0.0, api_key: str | None = None) -> None:
        super().__init__(responder, delay)
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return self.root_url

    def parse(self, path: str, headers: dict, body: dict) -> Received | None:
        route = path.split("?")[0]
        if not (route.startswith(("/v1/models/", "/v1beta/models/"))):
            return None
        if not route.endswith(":generateContent"):
            return None

        def texts(content: dict) -> str:
            return "".join(p.get("text", "") for p in content.get("parts", []))

        users = [texts(c) for c in body.get("contents", []) if c.get("role", "user") == "user"]
        system = texts(body.get("systemInstruction") or {})
        return Received(route, headers, body, system, users[-1] if users else "")

    @property
    def model_names(self) -> list[str]:
        """The model named in each request's path."""
        return [r.path.rsplit("/", 1)[-1].split(":")[0] for r in self.requests]

    def _next_reply(self, received: Received) -> Reply:
        if self.api_key is not None and received.headers.get("x-goog-api-key") != self.api_key:
            with self._lock:
                self.requests.append(received)
            return Reply(status=400, message="API key not valid. Please pass a valid API key.")
        return super()._next_reply(received)

    def answer(self, received: Received, reply: Reply) -> dict:
        parts = [{"text": reply.text}] if reply.text is not None else []
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
        candidate["finishReason"] = reply.finish or "STOP"
        completion = _completion_tokens(reply)
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": reply.prompt_tokens,
                "candidatesTokenCount": completion,
                "totalTokenCount": reply.prompt_tokens + completion,
            },
            "modelVersion": "fake-gemini",
        }

    def error(self, reply: Reply) -> dict:
        status = GEMINI_STATUS.get(reply.status, "UNKNOWN")
        return {"error": {"code": reply.status, "message": reply.message, "status": status}}


class FakeOpenAI(FakeServer):
    """`POST /v1/chat/completions` in the openai SDK's shape (choices, finish_reason, usage).

    `api_key`, when given, is checked against `Authorization: Bearer ...` (401 otherwise).
    """

    def __init__(self, responder=None, delay: float = 0.0, api_key: str | None = None) -> None:
        super().__init__(responder, delay)
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def parse(self, path: str, headers: dict, body: dict) -> Received | None:
        if path.split("?")[0] != "/v1/chat/completions":
            return None
        messages = body.get("messages", [])
        system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
        users = [m["content"] for m in messages if m.get("role") == "user"]
        return Received(path, headers, body, system, users[-1] if users else "")

    def _next_reply(self, received: Received) -> Reply:
        wanted = f"Bearer {self.api_key}"
        if self.api_key is not None and received.headers.get("authorization") != wanted:
            with self._lock:
                self.requests.append(received)
            return Reply(status=401, message="Incorrect API key provided.")
        return super()._next_reply(received)

    def answer(self, received: Received, reply: Reply) -> dict:
        completion = _completion_tokens(reply)
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": received.json.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish or "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": reply.prompt_tokens + completion,
            },
        }

    def error(self, reply: Reply) -> dict:
        kind = "rate_limit_error" if reply.status == 429 else "invalid_request_error"
        return {"error": {"message": reply.message, "type": kind, "code": reply.status}}


# ---------------------------------------------------------------- a real mlx_lm server
# lem run starts the same server for a local judge, so the launcher lives in the library.
from lem.serve import free_port, mlx_server  # noqa: E402,F401
