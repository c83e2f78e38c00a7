"""The HTTP plumbing every stand-in shares: a threaded loopback server around `handle(...) -> Reply`."""

from __future__ import annotations

import ipaddress
import json
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
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
    # Headers and body leave in separate writes: with Nagle on, a kept-alive client's delayed
    # ACK holds the body back about 40 ms on every answer.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        # TLS handshakes happen here, in the connection's own thread: done in accept(), one
        # client that never finishes its handshake would stall the whole server.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

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


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up or failing a handshake are routine here: say nothing."""


class LoopbackServer:
    """Serves `self.handle` on 127.0.0.1 (port chosen by the OS unless given) in a daemon thread.

    Stand-ins subclass it and implement `handle`; `with StandIn() as s:` starts and stops it.
    """

    name = "stand-in"

    def __init__(self, *, port: int = 0, tls: bool = False) -> None:
        self.stopping = threading.Event()
        self._port = port
        self._tls = tls
        self.ca_file: str | None = None
        """With `tls`, the PEM certificate a client must trust (it is its own authority)."""
        self._certificate_dir: tempfile.TemporaryDirectory[str] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} is not started")
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        server = _QuietServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        if self._tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._certificate_dir = tempfile.TemporaryDirectory(prefix="stand-in-tls-")
            self.ca_file, key_file = self_signed_certificate(Path(self._certificate_dir.name))
            context.load_cert_chain(self.ca_file, key_file)
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
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
        if self._certificate_dir is not None:
            self._certificate_dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def certificate_for(key: Any, common_name: str, *, tls: bool = False) -> bytes:
    """A self-signed PEM certificate of `key`, valid for a day; for 127.0.0.1 and localhost
    when it is to serve TLS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )
    if tls:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def private_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def self_signed_certificate(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and localhost, valid for a day; (certificate, key) paths."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate_for(key, "devstack stand-in", tls=True))
    key_path.write_bytes(private_pem(key))
    return str(cert_path), str(key_path)
