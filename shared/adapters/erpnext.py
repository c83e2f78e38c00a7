"""ERPNext's REST API v1 (Frappe) through requests: documents, optimistic saves, keyset-stable lists,
counts, whitelisted methods, uploads and streamed files, with every failure translated into the
bridge's error tree.

    no answer, timeout, 408, 429, 5xx -> UpstreamUnavailable (retry later)
    401 (key or secret wrong)         -> ConfigurationError (the instance is wrong, not the event)
    403                               -> PermissionDenied(UpstreamRejected): not ours to read
    404                               -> NotFound(UpstreamRejected)
    417 TimestampMismatchError        -> DocumentChanged(UpstreamRejected): saved by someone first
    any other 4xx                     -> UpstreamRejected with Frappe's exc_type and first message

Messages name the operation, the status and Frappe's exception type; never a header or the secret.
Every request goes through the breaker of `shared.platform.resilience`; reads are also retried briefly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import cast
from urllib.parse import quote

import requests

from shared.core.documents import is_plain_file_path
from shared.core.envelope import Json
from shared.errors import (
    ConfigurationError,
    DocumentChanged,
    NotFound,
    PermissionDenied,
    UpstreamRejected,
    UpstreamUnavailable,
)
from shared.platform import resilience

SERVICE = "erpnext"
PAGE_LENGTH = 500
FILE_CHUNK_BYTES = 1024 * 1024
MESSAGE_CHARS = 300
KEYSET_ORDER = "modified asc, name asc"
Filter = tuple[str, str, object]
ChildFilter = tuple[str, str, str, object]
"""(child doctype, field, operator, value): parents with a child row matching (Frappe joins)."""

_TAGS = re.compile(r"<[^>]+>")


class ErpNextClient:
    """One ERPNext site. Build it once per instance; it is safe to share between threads as far as
    its `requests.Session` is (one connection pool, no per-call state)."""

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
        self._api_key = api_key
        self._api_secret = api_secret
        self._timeout_s = timeout_s
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"ErpNextClient(url={self.url!r}, api_key={self._api_key!r})"

    # -- documents ------------------------------------------------------------------------------
    def get_doc(self, doctype: str, name: str) -> Mapping[str, Json]:
        """The whole document, child tables included (NotFound when there is none)."""
        return _document(self._call("GET", _resource(doctype, name)))

    def update(
        self, doctype: str, name: str, values: Mapping[str, Json], *, modified: str | None
    ) -> Mapping[str, Json]:
        """Save `values` and return the saved document.

        With `modified` (the stamp read earlier) Frappe saves only if nobody saved the document
        since; otherwise DocumentChanged. `None` saves unconditionally.
        """
        body = dict(values) if modified is None else {**values, "modified": modified}
        return _document(self._call("PUT", _resource(doctype, name), json_body=body))

    def insert(self, doctype: str, values: Mapping[str, Json]) -> Mapping[str, Json]:
        """Create a document; the saved document, its name included."""
        return _document(self._call("POST", _resource(doctype), json_body=dict(values)))

    def delete(self, doctype: str, name: str) -> None:
        """Delete a document (NotFound when it is already gone)."""
        self._call("DELETE", _resource(doctype, name))

    # -- lists ----------------------------------------------------------------------------------
    def iter_docs(
        self,
        doctype: str,
        *,
        fields: Sequence[str],
        filters: Sequence[Filter] = (),
        order_by: str = "modified asc",
        page_length: int = PAGE_LENGTH,
    ) -> Iterator[Mapping[str, Json]]:
        """Every matching document, with `fields` plus `name` and `modified`, page by page.

        Ordered by `modified asc` the pages are keyset pages, right while documents change: an
        offset page would skip a row whenever an earlier one is saved mid-run (it moves to the
        end). Each next page asks for `modified >= the last stamp yielded` and drops the rows
        already yielded at that stamp; it asks for that many rows more than `page_length`, so a
        page still brings `page_length` new rows and a run where nothing changed costs one call.
        A document saved mid-run is yielded again at its new place. Any other order pages by
        offset (`limit_start`), which is only right while nothing changes.
        """
        if page_length < 1:
            raise ValueError("page_length must be at least 1 (Frappe reads 0 as 'every row')")
        wanted = list(dict.fromkeys([*fields, "name", "modified"]))
        if " ".join(order_by.lower().split()) == "modified asc":
            yield from self._keyset_pages(doctype, wanted, filters, page_length)
        else:
            yield from self._offset_pages(doctype, wanted, filters, order_by, page_length)

    def _keyset_pages(
        self, doctype: str, fields: list[str], filters: Sequence[Filter], page_length: int
    ) -> Iterator[Mapping[str, Json]]:
        is_floor = [field == "modified" and op == ">=" for field, op, _ in filters]
        others = [f for f, floor in zip(filters, is_floor, strict=True) if not floor]
        # The caller's own `modified >=` filters: the largest one holds; ours replaces it.
        floor = max(
            (str(f[2]) for f, floor in zip(filters, is_floor, strict=True) if floor), default=None
        )
        since = floor  # the stamp of the last row yielded (or the caller's floor)
        yielded_at_since: set[str] = set()
        past_since = False  # True once every row at `since` was read: ask for `modified > since`
        while True:
            if since is None:
                window = others
            else:
                window = [*others, ("modified", ">" if past_since else ">=", since)]
            limit = page_length + len(yielded_at_since)
            page = self._list(
                doctype, fields, window, order_by=KEYSET_ORDER, start=0, page_length=limit
            )
            for row in page:
                stamp, name = str(row.get("modified")), str(row.get("name"))
                if stamp != since:
                    since, yielded_at_since, past_since = stamp, set(), False
                elif name in yielded_at_since:
                    continue  # read on the page before; the next page starts at its stamp
                yielded_at_since.add(name)
                yield row
            if len(page) < limit:
                return
            if str(page[0].get("modified")) == since:
                # A full page at one stamp: `>=` would bring it back again, so read the rest of
                # that stamp by name, then carry on after it.
                yield from self._ties(
                    doctype,
                    fields,
                    others,
                    stamp=since,
                    after=str(page[-1].get("name")),
                    page_length=page_length,
                )
                yielded_at_since, past_since = set(), True

    def _ties(
        self,
        doctype: str,
        fields: list[str],
        others: Sequence[Filter],
        *,
        stamp: str,
        after: str,
        page_length: int,
    ) -> Iterator[Mapping[str, Json]]:
        while True:
            window = [*others, ("modified", "=", stamp), ("name", ">", after)]
            ties = self._list(
                doctype, fields, window, order_by="name asc", start=0, page_length=page_length
            )
            yield from ties
            if len(ties) < page_length:
                return
            after = str(ties[-1].get("name"))

    def _offset_pages(
        self,
        doctype: str,
        fields: list[str],
        filters: Sequence[Filter],
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
        filters: Sequence[Filter | ChildFilter],
        *,
        order_by: str,
        start: int,
        page_length: int,
    ) -> list[Mapping[str, Json]]:
        params = {
            "fields": json.dumps(fields),
            "filters": json.dumps(_filter_rows(doctype, filters), default=str),
            "order_by": order_by,
            "limit_start": str(start),
            "limit_page_length": str(page_length),
        }
        data = self._call("GET", _resource(doctype), params=params).get("data")
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise UpstreamUnavailable(
                f"erpnext list {doctype}: the answer has no list of rows", service=SERVICE
            )
        return cast(list[Mapping[str, Json]], data)

    def list_docs(
        self,
        doctype: str,
        *,
        fields: Sequence[str],
        filters: Sequence[Filter | ChildFilter] = (),
        order_by: str = "modified desc",
        limit: int = 20,
    ) -> list[Mapping[str, Json]]:
        """One page of at most `limit` matching documents with `fields` (no child tables).

        A four-part filter names a child doctype (`("Contact Phone", "phone", "like", "%1%")`):
        Frappe keeps the parents with a child row that matches. For every row of a large set use
        `iter_docs`.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1 (Frappe reads 0 as 'every row')")
        return self._list(
            doctype, list(fields), filters, order_by=order_by, start=0, page_length=limit
        )

    def count(self, doctype: str, filters: Sequence[Filter | ChildFilter] = ()) -> int:
        """How many documents match (frappe.client.get_count), without reading them."""
        answer = self.call_method(
            "frappe.client.get_count",
            {
                "doctype": doctype,
                "filters": json.dumps(_filter_rows(doctype, filters), default=str),
            },
        )
        if isinstance(answer, bool) or not isinstance(answer, int):
            raise UpstreamUnavailable(
                f"erpnext count {doctype}: the answer is not a number", service=SERVICE
            )
        return answer

    def logged_user(self) -> str:
        """The user this client's token belongs to (the connection test, and a person's proof
        of who they are); ConfigurationError when ERPNext refuses the token."""
        return str(self.call_method("frappe.auth.get_logged_user"))

    def call_method(
        self,
        method: str,
        params: Mapping[str, str] | None = None,
        *,
        post: Mapping[str, Json] | None = None,
    ) -> Json:
        """A whitelisted method's `message`: GET with `params`, or POST `post` as a JSON body."""
        path = "/api/method/" + quote(method, safe=".")
        if post is None:
            answer = self._call("GET", path, params=params)
        else:
            answer = self._call("POST", path, params=params, json_body=post)
        return answer.get("message")

    # -- files ----------------------------------------------------------------------------------
    def upload_file(
        self,
        doctype: str,
        name: str,
        filename: str,
        content: bytes,
        *,
        is_private: bool = True,
        folder: str | None = None,
    ) -> Mapping[str, Json]:
        """Attach `content` to a document as a new File (Frappe's `upload_file`, multipart) and
        return the File document. It fires the File's after_insert webhooks like any upload.

        Frappe does not check that the document exists: check first where that matters."""
        form = {"doctype": doctype, "docname": name, "is_private": "1" if is_private else "0"}
        if folder is not None:
            form["folder"] = folder
        answer = self._call(
            "POST",
            "/api/method/upload_file",
            form=form,
            files={"file": (filename, content, "application/octet-stream")},
        )
        message = answer.get("message")
        if not isinstance(message, dict):
            raise UpstreamUnavailable(
                "erpnext upload_file: the answer has no File", service=SERVICE
            )
        return message

    @contextmanager
    def stream_file(
        self, file_url: str, chunk_size: int = FILE_CHUNK_BYTES
    ) -> Iterator[Iterator[bytes]]:
        """The bytes of a File's `file_url` (/files/... or /private/files/...) in chunks of at most
        `chunk_size`, never all in memory; the connection closes when the block ends."""
        if not is_plain_file_path(file_url):
            raise UpstreamRejected(
                f"erpnext download: not an ERPNext file path: {file_url[:100]}", service=SERVICE
            )
        what = f"download {file_url[:120]}"
        with resilience.guarded(SERVICE, what), self._translated(what):
            response = self._session.get(
                self.url + quote(file_url, safe="/"),
                headers=self._headers(),
                stream=True,
                timeout=self._timeout_s,
            )
            if not response.ok:
                with response:
                    response.raise_for_status()
        with response:
            yield self._chunks(response, chunk_size, what)

    def _chunks(self, response: requests.Response, chunk_size: int, what: str) -> Iterator[bytes]:
        # Translated here, not around the caller's block: a cut-off download is ours to report,
        # an error in what the caller does with the bytes is not.
        with self._translated(what):
            yield from response.iter_content(chunk_size)

    # -- plumbing -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        # Per request, not on the session: a session handed in may be shared with other services.
        return {
            "Authorization": f"token {self._api_key}:{self._api_secret}",
            "Accept": "application/json",
        }

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Json] | None = None,
        form: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Json]:
        what = f"{method} {path[:120]}"
        # Reads are safe to repeat; a write whose answer was lost may have happened.
        return resilience.call(
            SERVICE,
            lambda: self._attempt(
                method, path, what, params=params, json_body=json_body, form=form, files=files
            ),
            what=what,
            backoff=resilience.IN_INVOCATION if method == "GET" else None,
        )

    def _attempt(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Json] | None,
        form: Mapping[str, str] | None,
        files: Mapping[str, tuple[str, bytes, str]] | None,
    ) -> dict[str, Json]:
        with self._translated(what):
            response = self._session.request(
                method,
                self.url + path,
                params=params,
                json=json_body,
                data=form,
                files=files,
                headers=self._headers(),
                timeout=self._timeout_s,
            )
            response.raise_for_status()
            answer = response.json()
        if not isinstance(answer, dict):
            raise UpstreamUnavailable(
                f"erpnext {what}: the answer is not a JSON object", service=SERVICE
            )
        return cast(dict[str, Json], answer)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """requests' failures into the error tree, with the secret scrubbed from every message."""
        try:
            yield
        except requests.HTTPError as exc:
            error = _status_error(what, exc.response, self._scrub)
        except requests.RequestException as exc:  # no answer, a cut-off one, or one not JSON
            error = UpstreamUnavailable(f"erpnext {what}: {type(exc).__name__}", service=SERVICE)
        else:
            return
        raise error from None  # the request (and its Authorization header) stays behind

    def _scrub(self, text: str) -> str:
        # Frappe does not echo credentials, but a proxy's error page might.
        return text.replace(self._api_secret, "***") if self._api_secret else text


def _resource(doctype: str, name: str | None = None) -> str:
    path = "/api/resource/" + quote(doctype, safe="")
    return path if name is None else path + "/" + quote(name, safe="")


def _filter_rows(doctype: str, filters: Sequence[Filter | ChildFilter]) -> list[list[object]]:
    """Frappe's list form: `[doctype, field, op, value]`, the child doctype where one is named."""
    return [
        [doctype, *condition] if len(condition) == 3 else list(condition) for condition in filters
    ]


def _document(answer: Mapping[str, Json]) -> Mapping[str, Json]:
    data = answer.get("data")
    if not isinstance(data, dict):
        raise UpstreamUnavailable("erpnext: the answer has no document", service=SERVICE)
    return data


def _status_error(
    what: str, response: requests.Response | None, scrub: Callable[[str], str]
) -> Exception:
    status = response.status_code if response is not None else 0
    exc_type, message = (scrub(part) for part in _frappe_error(response))
    text = " ".join(part for part in (f"erpnext {what}: HTTP {status}", exc_type, message) if part)
    if status in (0, 408, 429) or status >= 500:
        return UpstreamUnavailable(text, service=SERVICE)
    if status == 401:
        # ConfigurationError on purpose: no event is at fault, and the runtime retries surprises,
        # so events wait for the credentials to be fixed instead of becoming error records.
        return ConfigurationError(
            f"erpnext {what}: HTTP 401 {exc_type or 'Unauthorized'}: the API key or secret is wrong"
        )
    if status == 403:
        return PermissionDenied(text, service=SERVICE)
    if status == 404:
        return NotFound(text, service=SERVICE)
    if exc_type == "TimestampMismatchError":
        return DocumentChanged(text, service=SERVICE)
    return UpstreamRejected(text, service=SERVICE)


def _frappe_error(response: requests.Response | None) -> tuple[str, str]:
    """Frappe's `exc_type` and first server message (JSON encoded twice), without HTML, trimmed.

    A traceback (`exc`) is never taken: it can quote the request."""
    try:
        body = response.json() if response is not None else None
    except ValueError:  # an HTML error page (a proxy, or a private file refused)
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    exc_type = str(body.get("exc_type") or "")[:80]
    message = ""
    try:
        messages = json.loads(body.get("_server_messages") or "[]")
        first = json.loads(messages[0]) if messages else {}
        message = str(first.get("message", "")) if isinstance(first, dict) else str(first)
    except (ValueError, TypeError, AttributeError):
        message = ""
    if not message:
        exception = str(body.get("exception") or "")
        message = exception.split(": ", 1)[-1] if exc_type and exc_type in exception else exception
    message = " ".join(_TAGS.sub("", message).split())
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 3] + "..."
    return exc_type, message
