"""ERPNext's REST API v1 (Frappe), through requests: documents, keyset-stable lists, files.

Token authentication (`Authorization: token KEY:SECRET`); the secret never appears in a message,
a log line or repr. Failures join the error tree: no answer, 429 and 5xx may pass
(UpstreamUnavailable); 401/403 are a configuration problem; 404 is NotFound; 417 is a
validation refusal, with TimestampMismatchError as DocumentChanged (someone saved it first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import quote

import requests

from shared.core.envelope import Json
from shared.errors import ConfigurationError, UpstreamRejected, UpstreamUnavailable

SERVICE = "erpnext"
PAGE_LENGTH = 500
Filter = tuple[str, str, object]


class NotFound(UpstreamRejected):
    """The document or file does not exist (any more)."""


class DocumentChanged(UpstreamRejected):
    """Optimistic locking refused a save: the document was modified after it was read."""


class ErpNextClient:
    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout_s: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._session = session or requests.Session()
        self._auth = {
            "Authorization": f"token {api_key}:{api_secret}",
            "Accept": "application/json",
        }

    def __repr__(self) -> str:
        return f"ErpNextClient(url={self.url!r})"

    # -- documents ------------------------------------------------------------------------------
    def get_doc(self, doctype: str, name: str) -> Mapping[str, Json]:
        return cast(Mapping[str, Json], self._call("GET", _resource(doctype, name))["data"])

    def update(
        self, doctype: str, name: str, values: Mapping[str, Json], *, modified: str | None
    ) -> Mapping[str, Json]:
        """Save `values`; with `modified`, only if nobody saved the document since (else DocumentChanged)."""
        body = dict(values) if modified is None else {**values, "modified": modified}
        answer = self._call("PUT", _resource(doctype, name), json_body=body)
        return cast(Mapping[str, Json], answer["data"])

    def iter_docs(
        self,
        doctype: str,
        *,
        fields: Sequence[str],
        filters: Sequence[Filter] = (),
        order_by: str = "modified asc",
        page_length: int = PAGE_LENGTH,
    ) -> Iterator[Mapping[str, Json]]:
        """Every matching document, `fields` only, in pages of `page_length`.

        Ordered by `modified asc`, pages are keyset pages (`modified >= the last stamp seen`,
        skipping the rows already read at that stamp), which stay right while documents change:
        an offset page skips a row whenever an earlier one is modified mid-run and moves to the
        end. (Frappe stamps `modified` to the microsecond, so rows rarely share one; when a row
        read at the boundary stamp changes mid-run while others share that stamp, one of those
        may be missed, a case this cannot see.) Any other order pages by offset.
        """
        wanted = list(dict.fromkeys([*fields, "name", "modified"]))
        if order_by.strip().lower() != "modified asc":
            yield from self._pages(doctype, wanted, list(filters), order_by, page_length)
            return
        others = [f for f in filters if f[:2] != ("modified", ">=")]
        since = next((str(f[2]) for f in filters if f[:2] == ("modified", ">=")), None)
        read_at_since: set[str] = set()
        while True:
            window = [*others, ("modified", ">=", since)] if since else others
            page = self._list(
                doctype,
                wanted,
                window,
                order_by="modified asc, name asc",
                start=len(read_at_since),
                page_length=page_length,
            )
            for row in page:
                stamp, name = str(row["modified"]), str(row["name"])
                if stamp == since and name in read_at_since:
                    continue
                if stamp != since:
                    since, read_at_since = stamp, set()
                read_at_since.add(name)
                yield row
            if len(page) < page_length:
                return

    def _pages(
        self,
        doctype: str,
        fields: list[str],
        filters: list[Filter],
        order_by: str,
        page_length: int,
    ) -> Iterator[Mapping[str, Json]]:
        start = 0
        while True:
            page = self._list(
                doctype, fields, filters, order_by=order_by, start=start, page_length=page_length
            )
            yield from page
            if len(page) < page_length:
                return
            start += page_length

    def _list(
        self,
        doctype: str,
        fields: list[str],
        filters: Sequence[Filter],
        *,
        order_by: str,
        start: int,
        page_length: int,
    ) -> list[Mapping[str, Json]]:
        params = {
            "fields": json.dumps(fields),
            "filters": json.dumps(
                [[doctype, f, op, value] for f, op, value in filters], default=str
            ),
            "order_by": order_by,
            "limit_start": str(start),
            "limit_page_length": str(page_length),
        }
        answer = self._call("GET", _resource(doctype), params=params)
        return cast(list[Mapping[str, Json]], answer["data"])

    # -- files ----------------------------------------------------------------------------------
    @contextmanager
    def stream_file(
        self, file_url: str, chunk_size: int = 1024 * 1024
    ) -> Iterator[Iterator[bytes]]:
        """The file's bytes in chunks, never all in memory; private files with our credentials."""
        if not file_url.startswith(("/files/", "/private/files/")):
            raise UpstreamRejected(f"not an ERPNext file URL: {file_url[:100]}", service=SERVICE)
        with _translated(f"download {file_url[:100]}"):
            response = self._session.get(
                self.url + quote(file_url), headers=self._auth, stream=True, timeout=self._timeout_s
            )
            with response:
                _raise_for(response, f"download {file_url[:100]}")
                yield response.iter_content(chunk_size)

    # -- plumbing -------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Json] | None = None,
    ) -> dict[str, Any]:
        what = f"{method} {path[:120]}"
        with _translated(what):
            response = self._session.request(
                method,
                self.url + path,
                params=params,
                json=json_body,
                headers=self._auth,
                timeout=self._timeout_s,
            )
            _raise_for(response, what)
            answer = response.json()
        if not isinstance(answer, dict):
            raise UpstreamRejected(f"erpnext {what}: answer is not a JSON object", service=SERVICE)
        return answer


def _resource(doctype: str, name: str | None = None) -> str:
    path = "/api/resource/" + quote(doctype, safe="")
    return path if name is None else path + "/" + quote(name, safe="")


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except requests.RequestException as exc:  # no answer, or a cut-off one
        raise UpstreamUnavailable(
            f"erpnext {what}: {type(exc).__name__}", service=SERVICE
        ) from None
    except ValueError:  # an answer that is not JSON (a proxy's error page)
        raise UpstreamUnavailable(f"erpnext {what}: answer is not JSON", service=SERVICE) from None


def _raise_for(response: requests.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    exc_type, message = _frappe_error(response)
    text = f"erpnext {what}: HTTP {status} {exc_type} {message}".strip()
    if status == 429 or status >= 500:
        raise UpstreamUnavailable(text, service=SERVICE)
    if status in (401, 403):
        raise ConfigurationError(
            f"erpnext {what}: HTTP {status}: the API key and secret are wrong or lack permission"
        )
    if status == 404:
        raise NotFound(text, service=SERVICE)
    if exc_type == "TimestampMismatchError":
        raise DocumentChanged(text, service=SERVICE)
    raise UpstreamRejected(text, service=SERVICE)


def _frappe_error(response: requests.Response) -> tuple[str, str]:
    """Frappe's `exc_type` and first server message (JSON encoded twice), trimmed."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    exc_type = str(body.get("exc_type") or "")
    message = ""
    try:
        messages = json.loads(body.get("_server_messages") or "[]")
        if messages:
            message = str(json.loads(messages[0]).get("message", ""))
    except (ValueError, TypeError, AttributeError):
        message = ""
    return exc_type, (message or str(body.get("exception") or ""))[:300]
