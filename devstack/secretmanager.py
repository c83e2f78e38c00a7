"""A Secret Manager stand-in: the v1 REST `versions/*:access` call, from an in-memory dict of secrets."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from devstack.httpserver import LoopbackServer, Reply

_ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")


class SecretManagerStandIn(LoopbackServer):
    """Serves `GET /v1/projects/P/secrets/NAME/versions/V:access` for the secrets it holds."""

    name = "secret-manager-stand-in"

    def __init__(self, secrets: Mapping[str, str]) -> None:
        super().__init__()
        self.secrets = dict(secrets)
        self.accessed: list[str] = []

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        match = _ACCESS.match(raw_path.split("?", 1)[0])
        if method != "GET" or match is None:
            return Reply.json(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
        project, name, version = match.groups()
        self.accessed.append(name)
        if name not in self.secrets:
            message = f"Secret [projects/{project}/secrets/{name}] not found."
            return Reply.json(
                404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}}
            )
        data = base64.b64encode(self.secrets[name].encode()).decode()
        version_name = f"projects/{project}/secrets/{name}/versions/{version}"
        return Reply.json(200, {"name": version_name, "payload": {"data": data}})
