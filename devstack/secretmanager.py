"""A Secret Manager stand-in: the v1 REST `versions/*:access` call, from an in-memory dict of secrets."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")


class SecretManagerStandIn:
    """Serves `GET /v1/projects/P/secrets/NAME/versions/V:access` for the secrets it holds."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = dict(secrets)
        self.accessed: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = _ACCESS.match(self.path.split("?", 1)[0])
                if match is None:
                    return self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
                project, name, version = match.groups()
                stand_in.accessed.append(name)
                if name not in stand_in.secrets:
                    message = f"Secret [projects/{project}/secrets/{name}] not found."
                    return self._answer(
                        404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}
                    )
                data = base64.b64encode(stand_in.secrets[name].encode()).decode()
                version_name = f"projects/{project}/secrets/{name}/versions/{version}"
                return self._answer(200, {"name": version_name, "payload": {"data": data}})

            def _answer(self, status: int, body: object) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: a stand-in's access log is noise in test output."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> SecretManagerStandIn:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
