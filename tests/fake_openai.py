"""A fake OpenAI-compatible chat server on 127.0.0.1 with a real socket, for tests and benches.

Point the real ``openai`` client at ``server.base_url``. Replies come from ``server.script`` (a
queue of actions, consumed first) and then from ``server.responder(body) -> action``. An action
is a dict with any of:

    content        reply text (default: a small labeling program)
    finish_reason  default "stop"; "length" makes a truncated reply
    usage          {"prompt_tokens", "completion_tokens"}; default: word counts, deterministic
    status         HTTP status (429, 500, ...); non-200 sends an OpenAI-style error body
    headers        extra response headers, e.g. {"Retry-After": "0.2"}
    body           raw bytes to send instead of JSON (malformed / empty bodies)
    no_choices     True sends ``"choices": []``
    delay          seconds to sleep before answering (slow replies, timeouts)
    drip           seconds between single bytes of the body (a server that trickles its reply)
    work           seconds the server "computes" the reply (held under the serial lock, like a
                   one-request-at-a-time llama.cpp server, even when the client has gone)

``FakeOpenAI(serial=True)`` answers one request at a time (the others wait in its queue), as
llama-cpp-python's server does; ``served_unread`` counts replies computed for a client that had
already given up. ``GET /v1/models`` lists ``models`` (``None``: 404).

The server counts requests and sums the ``usage`` it actually sent, so tests can compare the
client's cost meter with the server's own books.
"""
from __future__ import annotations

import collections
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROGRAM_REPLY = """Here is a labeling function.

```python
def label_function(text):
    if "http" in text.lower():
        return 1
    return -1
```
"""


def default_action(body: dict) -> dict:
    return {"content": PROGRAM_REPLY}


def word_usage(body: dict, content: str) -> dict:
    prompt = sum(len(str(m.get("content", "")).split()) + 3 for m in body.get("messages", [])) + 3
    return {"prompt_tokens": prompt, "completion_tokens": len(content.split())}


def _client_gone(sock) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of concurrent connects beyond it waits
    # for a SYN retry (~1 s), which would hide the client's real concurrency
    request_queue_size = 128


class FakeOpenAI:
    """Start with ``with FakeOpenAI() as server:`` (or ``start()``/``stop()``)."""

    def __init__(self, responder=default_action, latency_s: float = 0.0, serial: bool = False,
                 models: list[str] | None = None):
        self.responder = responder
        self.latency_s = latency_s
        self.serial = serial
        self.models = models
        self.model_list_requests = 0
        self.served_unread = 0
        self._serial_lock = threading.Lock()
        self.script: collections.deque = collections.deque()
        self.requests: list[dict] = []
        self.request_times: list[float] = []
        self.served = {"prompt_tokens": 0, "completion_tokens": 0}
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being served at once (proves concurrency)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- control ----------------------------------------------------------------------------
    def push(self, *actions: dict) -> None:
        """Queue actions for the next requests, in arrival order."""
        self.script.extend(actions)

    @property
    def request_count(self) -> int:
        return len(self.requests)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "FakeOpenAI":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                server._handle(self)

            def do_GET(self):  # noqa: N802
                server._models(self)

            def log_message(self, *args):
                pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- serving ----------------------------------------------------------------------------
    def _models(self, h: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.model_list_requests += 1
        if self.models is None or not h.path.rstrip("/").endswith("/models"):
            payload, status = b'{"error": {"message": "not found"}}', 404
        else:
            payload, status = json.dumps({"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "local"} for m in self.models]}).encode(), 200
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}")
        with self._lock:
            self.requests.append(body)
            self.request_times.append(time.monotonic())
            action = self.script.popleft() if self.script else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.serial:
                with self._serial_lock:
                    self._reply(h, body, action)
            else:
                self._reply(h, body, action)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _reply(self, h: BaseHTTPRequestHandler, body: dict, action: dict | None) -> None:
        if action is None:
            action = self.responder(body)
        time.sleep(action.get("delay", self.latency_s))
        if action.get("work"):
            time.sleep(action["work"])
        status = action.get("status", 200)
        usage = None
        if "body" in action:
            payload = action["body"]
        elif status != 200:
            payload = json.dumps({"error": {"message": f"injected {status}", "type": "fake",
                                            "code": status}}).encode()
        else:
            content = action.get("content", PROGRAM_REPLY)
            usage = action.get("usage") or word_usage(body, content)
            choices = [] if action.get("no_choices") else [{
                "index": 0, "message": {"role": "assistant", "content": content},
                "finish_reason": action.get("finish_reason", "stop")}]
            payload = json.dumps({
                "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", "fake"),
                "choices": choices, "usage": {**usage, "total_tokens": sum(v for v in usage.values() if isinstance(v, int))},
            }).encode()
        if _client_gone(h.connection):  # the client gave up while we worked: nobody reads this
            with self._lock:
                self.served_unread += 1
            return
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            for name, value in action.get("headers", {}).items():
                h.send_header(name, value)
            h.end_headers()
            if action.get("drip"):
                for i in range(len(payload)):
                    h.wfile.write(payload[i:i + 1])
                    h.wfile.flush()
                    time.sleep(action["drip"])
            else:
                h.wfile.write(payload)
            h.wfile.flush()
        except OSError:  # the client gave up (timeout): nothing was delivered, nothing billed
            with self._lock:
                self.served_unread += 1
            return
        if usage is not None:
            with self._lock:
                for k in self.served:
                    if isinstance(usage.get(k), int):
                        self.served[k] += usage[k]
