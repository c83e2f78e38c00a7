"""The HTTP plumbing every stand-in shares: a threaded loopback server around `handle(...) -> Reply`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

FILE_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Reply:
    """An HTTP answer; `body` is written in chunks of FILE_CHUNK_BYTES."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    """Seconds to wait before answering (a slow or timed-out upstream)."""

    @classmethod
    def json(
        cls,
        status: int,
        payload: Any,
        headers: Sequence[tuple[str, str]] = (),
        *,
        default: Callable[[Any], Any] | None = None,
    ) -> Reply:
        content = (("Content-Type", "application/json; charset=UTF-8"), *headers)
        return cls(status, json.dumps(payload, default=default).encode(), content)

    def chunks(self) -> Iterator[memoryview]:
        view = memoryview(self.body)
        for start in range(0, len(view), FILE_CHUNK_BYTES):
            yield view[start : start + FILE_CHUNK_BYTES]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server: LoopbackServer = self.server.owner  # type: ignore[attr-defined]
        reply = server.handle(self.command, self.path, self.headers, body)  # type: ignore[arg-type]
        if reply.delay_s and server.stopping.wait(reply.delay_s):
            return
        try:
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                for chunk in reply.chunks():
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): as a real server, carry on

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines are noise in test output, and headers may carry tokens."""


class LoopbackServer:
    """Serves `self.handle` on 127.0.0.1 (port chosen by the OS unless given) in a daemon thread.

    Stand-ins subclass it and implement `handle`; `with StandIn() as s:` starts and stops it.
    """

    name = "stand-in"

    def __init__(self, *, port: int = 0) -> None:
        self.stopping = threading.Event()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
