"""A minimal AWS Lambda Runtime API server for one execution environment.

The runtime client (`python -m awslambdaric`) polls `/next`, then posts a response
or an error; this server hands one invocation at a time to it and lets the
executor wait for the outcome. Stdlib only, so it runs inside LocalStack's venv.
"""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_PREFIX = "/2018-06-01/runtime"


@dataclass
class Invocation:
    """One invoke: what the runtime receives and, once it answers, the outcome."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str = ""
    client_context: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: bytes = b""
    is_error: bool = False
    # monotonic seconds at which the runtime fetched the event (start of user code) and answered
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class InitError:
    """An error the runtime reported before it asked for the first event."""

    body: bytes
    error_type: str


class _QuietServer(ThreadingHTTPServer):
    """A runtime killed mid-request resets its connection: expected, not worth a traceback."""

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class RuntimeApiServer:
    """Serves the Runtime API on 127.0.0.1 (a free port) for one environment."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        # None is the stop sentinel that releases a handler blocked in /next
        self._pending: queue.Queue[Invocation | None] = queue.Queue()
        self._waiting = 0
        self._by_id: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self.first_next = threading.Event()
        self.first_next_at: float | None = None
        self.init_error: InitError | None = None
        self.init_error_event = threading.Event()
        self._httpd = _QuietServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lambda-runtime-api", daemon=True)

    @property
    def address(self) -> str:
        """host:port, the value of AWS_LAMBDA_RUNTIME_API."""
        host, port = self._httpd.server_address[:2]
        return f"{host.decode() if isinstance(host, bytes) else host}:{port}"  # str for AF_INET

    def start(self) -> None:
        """Begin serving in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; waiting invocations are released as errors."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for _ in range(self._waiting + 1):
                self._pending.put(None)
            for inv in self._by_id.values():
                if not inv.done.is_set():
                    inv.is_error = True
                    inv.result = json.dumps(
                        {"errorType": "Runtime.Stopped", "errorMessage": "environment stopped"}
                    ).encode()
                    inv.done.set()

    def submit(self, inv: Invocation) -> None:
        """Queue an invocation for the runtime's next `/next` call."""
        with self._lock:
            self._by_id[inv.request_id] = inv
        self._pending.put(inv)

    def forget(self, request_id: str) -> None:
        """Drop bookkeeping for a finished invocation."""
        with self._lock:
            self._by_id.pop(request_id, None)

    def _complete(self, request_id: str, body: bytes, is_error: bool) -> bool:
        with self._lock:
            inv = self._by_id.get(request_id)
        if inv is None or inv.done.is_set():
            return False
        inv.finished_at = time.monotonic()
        inv.result, inv.is_error = body, is_error
        inv.done.set()
        return True

    def _record_init_error(self, body: bytes, error_type: str) -> None:
        self.init_error = InitError(body=body, error_type=error_type)
        self.init_error_event.set()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY: with Nagle, headers and body in two sends meet delayed ACKs (~40 ms per request)
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # the runtime polls constantly; access logs would drown the real ones

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path != f"{API_PREFIX}/invocation/next":
                    self._reply(HTTPStatus.NOT_FOUND, b'{"errorMessage":"unknown path"}')
                    return
                if not server.first_next.is_set():
                    server.first_next_at = time.monotonic()
                    server.first_next.set()
                with server._lock:
                    server._waiting += 1
                try:
                    inv = server._pending.get()  # blocks until an invoke arrives
                finally:
                    with server._lock:
                        server._waiting -= 1
                if inv is None:
                    self.close_connection = True
                    try:
                        self._reply(HTTPStatus.GONE, b'{"errorMessage":"environment stopped"}')
                    except OSError:
                        pass  # the runtime is usually dead already
                    return
                inv.started_at = time.monotonic()
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                    "Lambda-Runtime-Trace-Id": inv.trace_id,
                }
                if inv.client_context:
                    headers["Lambda-Runtime-Client-Context"] = inv.client_context
                self._reply(HTTPStatus.OK, inv.payload, headers)

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                parts = self.path.removeprefix(API_PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    etype = self.headers.get("Lambda-Runtime-Function-Error-Type", "Runtime.Unknown")
                    server._record_init_error(body, etype)
                    self._reply(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
                    return
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    ok = server._complete(parts[1], body, is_error=parts[2] == "error")
                    status = HTTPStatus.ACCEPTED if ok else HTTPStatus.BAD_REQUEST
                    self._reply(status, b'{"status":"OK"}' if ok else b'{"errorMessage":"unknown request id"}')
                    return
                self._reply(HTTPStatus.NOT_FOUND, b'{"errorMessage":"unknown path"}')

        return Handler
