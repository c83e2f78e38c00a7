"""A Google Drive v3 stand-in over HTTPS, for the calls the bridge makes, as drive.v3.json has them.

HTTPS because google-api-python-client keeps `https` for media uploads whatever `api_endpoint`
says (docs/SERVICES.md, Google Drive); the stand-in makes its own certificate, `ca_file`, for the client to trust.

Served: files.create (metadata only, `uploadType=media`, `multipart` and `resumable` sessions
with chunks that are multiples of 256 KiB and the `bytes */total` status query), files.get (also
`alt=media`), files.list (`q` with name, parents, mimeType, trashed and appProperties terms joined
by `and`; pages), files.update (trash, rename, appProperties, add/removeParents), files.delete,
drives.get. Kept from Google: the default fields (kind, id, name, mimeType: `webViewLink` and
`md5Checksum` only when asked for), shared-drive items hidden unless `supportsAllDrives`, a
service account refused file content outside a shared drive (403 storageQuotaExceeded), bearer
tokens mapped to principals. File content lives in temporary files, not in memory.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack.google_api import ApiError, Faults, api_error, parse_fields, selected
from devstack.httpserver import LoopbackServer, Reply

FOLDER = "application/vnd.google-apps.folder"
CHUNK_MULTIPLE = 256 * 1024
DEFAULT_FIELDS = "kind,id,name,mimeType"
QUOTA_MESSAGE = (
    "Service Accounts do not have storage quota. Leverage shared drives "
    "(https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth "
    "delegation (http://support.google.com/a/answer/7281227) instead."
)
Json = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Principal:
    email: str
    service_account: bool = False


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    owner: str
    drive_id: str | None
    app_properties: dict[str, str] = field(default_factory=dict)
    trashed: bool = False
    size: int = 0
    md5: str | None = None
    content: Path | None = None
    created: str = field(default_factory=_now)

    def resource(self) -> Json:
        folder = self.mime_type == FOLDER
        link = (
            f"https://drive.google.com/drive/folders/{self.id}"
            if folder
            else f"https://drive.google.com/file/d/{self.id}/view?usp=drivesdk"
        )
        described: Json = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": list(self.parents),
            "appProperties": dict(self.app_properties),
            "trashed": self.trashed,
            "createdTime": self.created,
            "webViewLink": link,
            "owners": [] if self.drive_id else [{"emailAddress": self.owner}],
        }
        if self.drive_id:
            described["driveId"] = self.drive_id
        if not folder:
            described["size"] = str(self.size)
            described["md5Checksum"] = self.md5
        return described


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    who: Principal


@dataclass
class Upload:
    """A resumable upload session: metadata now, bytes in chunks, a file at the end."""

    metadata: Json
    principal: Principal
    query: Mapping[str, list[str]]
    path: Path
    total: int | None = None
    received: int = 0
    done: DriveFile | None = None


# ---------------------------------------------------------------------------------------------
# The `q` language, the part we use: terms joined by `and`.
# ---------------------------------------------------------------------------------------------

_LITERAL = r"'((?:[^'\\]|\\.)*)'"
_TERMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^name\s*=\s*{_LITERAL}$"), "name"),
    (re.compile(rf"^name\s+contains\s+{_LITERAL}$"), "name_contains"),
    (re.compile(rf"^{_LITERAL}\s+in\s+parents$"), "parent"),
    (re.compile(rf"^mimeType\s*=\s*{_LITERAL}$"), "mime"),
    (re.compile(rf"^mimeType\s*!=\s*{_LITERAL}$"), "not_mime"),
    (re.compile(r"^trashed\s*=\s*(true|false)$"), "trashed"),
    (
        re.compile(
            rf"^appProperties\s+has\s+\{{\s*key\s*=\s*{_LITERAL}\s+and\s+value\s*=\s*{_LITERAL}\s*\}}$"
        ),
        "app_property",
    ),
)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_query(q: str) -> list[tuple[str, tuple[str, ...]]]:
    """`q` as (term kind, arguments); anything else is Google's 400 "Invalid Value"."""
    terms = []
    for part in re.split(r"\s+and\s+(?![^{]*\})", q.strip()) if q.strip() else []:
        for pattern, kind in _TERMS:
            match = pattern.match(part.strip())
            if match:
                terms.append((kind, tuple(_unescape(group) for group in match.groups())))
                break
        else:
            raise api_error(400, "Invalid Value", reason="invalid")
    return terms


def _holds(item: DriveFile, kind: str, args: tuple[str, ...]) -> bool:
    checks = {
        "name": lambda: item.name == args[0],
        "name_contains": lambda: args[0].lower() in item.name.lower(),
        "parent": lambda: args[0] in item.parents,
        "mime": lambda: item.mime_type == args[0],
        "not_mime": lambda: item.mime_type != args[0],
        "trashed": lambda: item.trashed == (args[0] == "true"),
        "app_property": lambda: item.app_properties.get(args[0]) == args[1],
    }
    return checks[kind]()


def _matches(item: DriveFile, terms: list[tuple[str, tuple[str, ...]]]) -> bool:
    return all(_holds(item, kind, args) for kind, args in terms)


# ---------------------------------------------------------------------------------------------
# The service.
# ---------------------------------------------------------------------------------------------


class DriveStandIn(LoopbackServer):
    """Google Drive on https://127.0.0.1; `tokens` maps bearer tokens to principals."""

    name = "drive-stand-in"

    def __init__(self, *, faults: Faults | None = None) -> None:
        super().__init__(tls=True)
        self.faults = faults or Faults()
        self.calls: Counter[str] = Counter()
        self.tokens: dict[str, Principal] = {}
        self.drives: dict[str, tuple[str, set[str]]] = {}
        """Shared drives: id -> (name, member emails)."""
        self._files: dict[str, DriveFile] = {}
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._storage = tempfile.TemporaryDirectory(prefix="drive-stand-in-")
        self._oauth_clients: dict[str, str] = {}
        self._refresh_tokens: dict[str, tuple[str, str]] = {}
        self._service_accounts: dict[str, tuple[Any, bool]] = {}
        """service account email -> (public key, domain-wide delegation granted)."""
        """refresh token -> (client id, user email)."""

    @property
    def endpoint(self) -> str:
        """The client's `api_endpoint`: Drive's base URL includes its service path."""
        return self.url + "/drive/v3/"

    def stop(self) -> None:
        super().stop()
        self._storage.cleanup()

    # -- what a test or the demo sets up and looks at -----------------------------------------
    def add_principal(self, token: str, email: str, *, service_account: bool = False) -> Principal:
        principal = Principal(email, service_account)
        self.tokens[token] = principal
        return principal

    def oauth_grant(self, email: str, client_id: str, client_secret: str) -> str:
        """A user's consent to an OAuth client: the refresh token Google's flow would hand out."""
        with self._lock:
            self._oauth_clients[client_id] = client_secret
            refresh_token = f"1//refresh-{next(self._ids)}"
            self._refresh_tokens[refresh_token] = (client_id, email)
            return refresh_token

    @property
    def token_uri(self) -> str:
        """Where this stand-in plays https://oauth2.googleapis.com/token (refresh grants)."""
        return self.url + "/token"

    def service_account_key(self, email: str, *, delegation: bool = False) -> Json:
        """A service-account key file's contents (as the Cloud console hands it out) whose tokens
        come from this stand-in; `delegation`: the Workspace admin allowed it to act as users."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self._lock:
            self._service_accounts[email] = (key.public_key(), delegation)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "stand-in",
            "private_key_id": f"key-{next(self._ids)}",
            "private_key": pem,
            "client_email": email,
            "client_id": str(next(self._ids)),
            "token_uri": self.token_uri,
        }

    def _jwt_grant(self, assertion: str) -> Principal | None:
        """The principal a signed JWT bearer assertion may act as, or None (Google's rules:
        signed by the account's key; `sub` only with domain-wide delegation)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, claims_part, signature = assertion.split(".")
            claims = json.loads(_b64url(claims_part))
            public_key, delegation = self._service_accounts[claims["iss"]]
            public_key.verify(
                _b64url(signature),
                f"{head}.{claims_part}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, KeyError, InvalidSignature):
            return None
        subject = claims.get("sub")
        if subject and subject != claims["iss"]:
            return Principal(subject) if delegation else None
        return Principal(claims["iss"], service_account=True)

    def _token(self, body: bytes) -> Reply:
        form = {key: values[-1] for key, values in parse_qs(body.decode()).items()}
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            principal = self._jwt_grant(form.get("assertion", ""))
            if principal is None:
                return Reply.json(
                    400,
                    {
                        "error": "unauthorized_client",
                        "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
                    },
                )
            access = f"ya29.stand-in-{next(self._ids)}"
            self.tokens[access] = principal
            return Reply.json(
                200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}
            )
        grant = self._refresh_tokens.get(form.get("refresh_token", ""))
        client_ok = self._oauth_clients.get(form.get("client_id", "")) == form.get("client_secret")
        if form.get("grant_type") != "refresh_token" or grant is None or not client_ok:
            error = {"error": "invalid_grant", "error_description": "Bad Request"}
            return Reply.json(400, error)
        access = f"ya29.stand-in-{next(self._ids)}"
        self.tokens[access] = Principal(grant[1])
        answer = {"access_token": access, "expires_in": 3599, "token_type": "Bearer"}
        return Reply.json(200, answer)

    def create_shared_drive(self, name: str, members: set[str]) -> str:
        with self._lock:
            drive_id = f"0A{next(self._ids):06d}PVA"
            self.drives[drive_id] = (name, set(members))
            return drive_id

    def files(self, *, include_trashed: bool = True) -> list[DriveFile]:
        with self._lock:
            return [f for f in self._files.values() if include_trashed or not f.trashed]

    def content(self, file_id: str) -> bytes:
        with self._lock:
            stored = self._files[file_id].content
        return stored.read_bytes() if stored else b""

    def path_of(self, file_id: str) -> str:
        """Folder names from the drive's root down to the file: "Projects/ACME/INV-1/scan.pdf"."""
        with self._lock:
            names, current = [], self._files.get(file_id)
            while current is not None:
                names.append(current.name)
                current = self._files.get(current.parents[0]) if current.parents else None
            return "/".join(reversed(names))

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        url = urlsplit(raw_path)
        query = parse_qs(url.query, keep_blank_values=True)
        changes = method != "GET"
        with self._lock:
            self.calls[f"{method} {_route_name(url.path)}"] += 1
            fault = self.faults.take()
            if fault is not None:
                self.calls[f"fault:{fault}"] += 1
                refusal = self.faults.refusal(fault, changes=changes)
                if refusal is not None:
                    return refusal
            if url.path == "/token" and method == "POST":
                return self._token(body)
            try:
                call = Call(method, url.path, query, headers, body, self._principal(headers))
                reply = self._route(call)
            except ApiError as exc:
                return exc.reply()
            except (ValueError, KeyError, TypeError) as exc:
                return api_error(400, f"Invalid request: {type(exc).__name__}: {exc}").reply()
            return self.faults.delivered(fault, reply)

    def _principal(self, headers: Mapping[str, str]) -> Principal:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise api_error(401, "Request is missing required authentication credential.")
        principal = self.tokens.get(token.strip())
        if principal is None:
            raise api_error(401, "Request had invalid authentication credentials.")
        return principal

    def _route(self, call: Call) -> Reply:
        if call.path in ("/upload/drive/v3/files", "/resumable/upload/drive/v3/files"):
            return self._upload(call)
        if call.path == "/drive/v3/files" and call.method == "POST":
            return self._file_reply(
                self._create(_json(call.body), None, call.who, call.query), call.query
            )
        if call.path == "/drive/v3/files" and call.method == "GET":
            return Reply.json(200, self._list(call.query, call.who))
        match = re.fullmatch(r"/drive/v3/files/([^/]+)", call.path)
        if match:
            return self._one_file(call, self._visible(match.group(1), call.who, call.query))
        match = re.fullmatch(r"/drive/v3/drives/([^/]+)", call.path)
        if match and call.method == "GET":
            drive = self.drives.get(match.group(1))
            if drive is None or call.who.email not in drive[1]:
                raise api_error(404, f"Shared drive not found: {match.group(1)}", reason="notFound")
            return Reply.json(200, {"kind": "drive#drive", "id": match.group(1), "name": drive[0]})
        raise api_error(404, f"Method not found: {call.method} {call.path}")

    def _upload(self, call: Call) -> Reply:
        kind = _one(call.query, "uploadType", "media")
        if call.method == "POST" and kind == "resumable":
            return self._start_resumable(call)
        if call.method == "PUT" and kind == "resumable":
            return self._resumable_chunk(_one(call.query, "upload_id", ""), call.headers, call.body)
        if call.method == "POST" and kind in ("multipart", "media"):
            metadata, content = (
                _multipart(call.headers, call.body) if kind == "multipart" else ({}, call.body)
            )
            return self._file_reply(
                self._create(metadata, content, call.who, call.query), call.query
            )
        raise api_error(400, f"Unsupported upload: {call.method} uploadType={kind}")

    def _one_file(self, call: Call, item: DriveFile) -> Reply:
        if call.method == "GET" and _one(call.query, "alt", "") == "media":
            return _media(item, call.headers.get("Range"))
        if call.method == "GET":
            return self._file_reply(item, call.query)
        if call.method == "PATCH":
            return self._file_reply(self._update(item, _json(call.body), call.query), call.query)
        if call.method == "DELETE":
            self._delete(item)
            return Reply(204)
        raise api_error(404, f"Method not found: {call.method} {call.path}")

    def _file_reply(self, item: DriveFile, query: Mapping[str, list[str]]) -> Reply:
        fields = _one(query, "fields", DEFAULT_FIELDS)
        return Reply.json(200, selected(item.resource(), parse_fields(fields)))

    # -- files -------------------------------------------------------------------------------
    def _visible(self, file_id: str, who: Principal, query: Mapping[str, list[str]]) -> DriveFile:
        item = self._files.get(file_id)
        if item is None or not self._can_see(item, who, _flag(query, "supportsAllDrives")):
            raise api_error(404, f"File not found: {file_id}.", reason="notFound")
        return item

    def _can_see(self, item: DriveFile, who: Principal, all_drives: bool) -> bool:
        if item.drive_id is None:
            return item.owner == who.email
        return all_drives and who.email in self.drives[item.drive_id][1]

    def _parent(self, parent_id: str, who: Principal, query: Mapping[str, list[str]]) -> str | None:
        """The drive a new item's parent lives in (None: My Drive)."""
        if parent_id in self.drives:
            if not _flag(query, "supportsAllDrives") or who.email not in self.drives[parent_id][1]:
                raise api_error(404, f"File not found: {parent_id}.", reason="notFound")
            return parent_id
        if parent_id == "root":
            return None
        parent = self._visible(parent_id, who, query)
        if parent.mime_type != FOLDER:
            raise api_error(400, "The parent is not a folder.", reason="invalidParent")
        return parent.drive_id

    def _create(
        self,
        metadata: Json,
        content: bytes | Path | None,
        who: Principal,
        query: Mapping[str, list[str]],
    ) -> DriveFile:
        parents = list(metadata.get("parents") or ["root"])
        if len(parents) != 1:
            raise api_error(403, "A file can have only one parent.", reason="cannotAddParent")
        drive_id = self._parent(parents[0], who, query)
        mime = str(metadata.get("mimeType") or "application/octet-stream")
        if mime != FOLDER and drive_id is None and who.service_account:
            raise api_error(403, QUOTA_MESSAGE, reason="storageQuotaExceeded")
        item = DriveFile(
            id=f"1{next(self._ids):08d}drv",
            name=str(metadata.get("name") or "Untitled"),
            mime_type=mime,
            parents=parents,
            owner=who.email,
            drive_id=drive_id,
            app_properties={
                str(k): str(v) for k, v in (metadata.get("appProperties") or {}).items()
            },
        )
        if mime != FOLDER:
            item.content = Path(self._storage.name) / item.id
            if isinstance(content, Path):
                shutil.move(content, item.content)
            else:
                item.content.write_bytes(content or b"")
            item.size, item.md5 = _measure(item.content)
        self._files[item.id] = item
        return item

    def _list(self, query: Mapping[str, list[str]], who: Principal) -> Json:
        terms = parse_query(_one(query, "q", ""))
        all_drives = _flag(query, "includeItemsFromAllDrives")
        if all_drives and not _flag(query, "supportsAllDrives"):
            raise api_error(
                403,
                "The includeItemsFromAllDrives parameter can only be set to true when "
                "supportsAllDrives is also true.",
                reason="teamDriveAllItemsRequiresSupportsTeamDrives",
            )
        drive_id = _one(query, "driveId", "") or None
        found = [
            item
            for item in self._files.values()
            if self._can_see(item, who, all_drives)
            and (drive_id is None or item.drive_id == drive_id)
            and _matches(item, terms)
        ]
        found.sort(key=lambda item: (item.created, item.id))
        size = min(int(_one(query, "pageSize", "100")), 1000)
        start = int(_one(query, "pageToken", "0") or 0)
        page: Json = {
            "kind": "drive#fileList",
            "files": [item.resource() for item in found[start : start + size]],
        }
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
        fields = _one(query, "fields", "kind,nextPageToken,files(kind,id,name,mimeType)")
        return selected(page, parse_fields(fields))  # type: ignore[no-any-return]

    def _update(self, item: DriveFile, changes: Json, query: Mapping[str, list[str]]) -> DriveFile:
        if "trashed" in changes:
            item.trashed = bool(changes["trashed"])
        if "name" in changes:
            item.name = str(changes["name"])
        for key, value in (changes.get("appProperties") or {}).items():
            if value is None:
                item.app_properties.pop(key, None)
            else:
                item.app_properties[str(key)] = str(value)
        removed = [p for p in _one(query, "removeParents", "").split(",") if p]
        added = [p for p in _one(query, "addParents", "").split(",") if p]
        if added or removed:
            parents = [p for p in item.parents if p not in removed] + added
            if len(parents) != 1:
                raise api_error(403, "A file can have only one parent.", reason="cannotAddParent")
            item.parents = parents
        return item

    def _delete(self, item: DriveFile) -> None:
        for child in [f for f in self._files.values() if item.id in f.parents]:
            self._delete(child)
        del self._files[item.id]
        if item.content is not None:
            item.content.unlink(missing_ok=True)

    # -- resumable uploads --------------------------------------------------------------------
    def _start_resumable(self, call: Call) -> Reply:
        query, headers, who = call.query, call.headers, call.who
        metadata = _json(call.body)
        parents = list(metadata.get("parents") or ["root"])
        drive_id = self._parent(parents[0], who, query)
        if drive_id is None and who.service_account and metadata.get("mimeType") != FOLDER:
            raise api_error(403, QUOTA_MESSAGE, reason="storageQuotaExceeded")
        upload_id = f"up{next(self._ids)}"
        total = headers.get("X-Upload-Content-Length")
        self._uploads[upload_id] = Upload(
            metadata,
            who,
            dict(query),
            Path(self._storage.name) / upload_id,
            int(total) if total else None,
        )
        self._uploads[upload_id].path.touch()
        location = f"{self.url}/upload/drive/v3/files?uploadType=resumable&upload_id={upload_id}"
        return Reply(200, b"", (("Location", location),))

    def _resumable_chunk(self, upload_id: str, headers: Mapping[str, str], body: bytes) -> Reply:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise api_error(404, "Upload session not found or expired.", reason="notFound")
        if upload.done is not None:
            return self._file_reply(upload.done, upload.query)
        span = re.fullmatch(
            r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", headers.get("Content-Range", "bytes */*")
        )
        if span is None:
            raise api_error(400, "Invalid Content-Range header.")
        first, last, total = span.groups()
        if total != "*":
            upload.total = int(total)
        if first is not None:
            start, end = int(first), int(last)
            if end - start + 1 != len(body):
                raise api_error(400, "The Content-Range does not match the bytes sent.")
            if start > upload.received:
                raise api_error(400, f"Expected the bytes from {upload.received}, not {start}.")
            final = upload.total is not None and end + 1 == upload.total
            if not final and len(body) % CHUNK_MULTIPLE:
                raise api_error(400, "Chunks other than the last must be a multiple of 256 KiB.")
            with upload.path.open("r+b") as stored:  # bytes already held are written again
                stored.seek(start)
                stored.write(body)
            upload.received = max(upload.received, end + 1)
        if upload.total is not None and upload.received >= upload.total:
            upload.done = self._create(upload.metadata, upload.path, upload.principal, upload.query)
            return self._file_reply(upload.done, upload.query)
        headers_out = (("Range", f"bytes=0-{upload.received - 1}"),) if upload.received else ()
        return Reply(308, b"", headers_out)


def _media(item: DriveFile, wanted: str | None) -> Reply:
    """The content, or the byte range asked for (206 with Content-Range), as Drive answers."""
    size = item.size
    span = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
    if span is None or item.content is None:
        data = item.content.read_bytes() if item.content else b""
        return Reply(200, data, (("Content-Type", item.mime_type),))
    first = int(span.group(1))
    last = min(int(span.group(2) or size - 1), size - 1)
    if first >= size:
        return Reply(416, b"", (("Content-Range", f"bytes */{size}"),))
    with item.content.open("rb") as stored:  # only the range, not the whole file
        stored.seek(first)
        data = stored.read(last - first + 1)
    headers = (("Content-Type", item.mime_type), ("Content-Range", f"bytes {first}-{last}/{size}"))
    return Reply(206, data, headers)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _route_name(path: str) -> str:
    if path.startswith("/upload") or path.startswith("/resumable"):
        return "upload"
    return re.sub(r"/files/[^/]+", "/files/ID", path.removeprefix("/drive/v3"))


def _one(query: Mapping[str, list[str]], key: str, default: str) -> str:
    values = query.get(key)
    return values[-1] if values else default


def _flag(query: Mapping[str, list[str]], key: str) -> bool:
    return _one(query, key, "false").lower() == "true"


def _json(body: bytes) -> Json:
    value = json.loads(body) if body else {}
    if not isinstance(value, dict):
        raise api_error(400, "The request body must be a JSON object.")
    return value


def _multipart(headers: Mapping[str, str], body: bytes) -> tuple[Json, bytes]:
    """multipart/related: the JSON metadata part, then the media part."""
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(
        f"Content-Type: {headers.get('Content-Type', '')}\r\n\r\n".encode() + body
    )
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise api_error(400, "A multipart upload has exactly two parts: metadata and media.")
    metadata = parts[0].get_payload(decode=True)
    media = parts[1].get_payload(decode=True)
    return _json(metadata if isinstance(metadata, bytes) else b""), media if isinstance(
        media, bytes
    ) else b""


def _measure(path: Path) -> tuple[int, str]:
    digest, size = hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as stored:
        for block in iter(lambda: stored.read(1024 * 1024), b""):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
