"""ErpNextClient (shared/adapters/erpnext.py) against the ERPNext stand-in: quoting, keyset pages
under change, optimistic saves, streamed files, and every failure translated into the error tree."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime

import pytest
import requests

from devstack.erpnext import ErpNextStandIn
from shared.adapters.erpnext import ErpNextClient
from shared.adapters.erpnext_directory import ErpNextDirectory
from shared.errors import (
    ConfigurationError,
    DocumentChanged,
    NotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)

KEY = "bridge-key"
SECRET = "s3cret-api-value-7f1c"
INVOICE = "Sales Invoice"
LIST = f"GET /api/resource/{INVOICE}"
FIELDS = ["grand_total"]


@pytest.fixture
def erp() -> Iterator[ErpNextStandIn]:
    with ErpNextStandIn(api_key=KEY, api_secret=SECRET) as running:
        yield running


@pytest.fixture
def client(erp: ErpNextStandIn) -> ErpNextClient:
    return ErpNextClient(erp.url, KEY, SECRET, timeout_s=2)


def list_calls(erp: ErpNextStandIn) -> int:
    method, path = LIST.split(" ", 1)
    return erp.request_count(method, path)


def new_invoices(erp: ErpNextStandIn, count: int) -> list[str]:
    return [
        str(erp.insert(INVOICE, {"customer": "Acme Builders", "grand_total": n})["name"])
        for n in range(count)
    ]


def names(rows: Iterable[Mapping[str, object]]) -> list[str]:
    return [str(row["name"]) for row in rows]


# -- documents -------------------------------------------------------------------------------


def test_get_doc_reads_a_document_when_its_name_has_spaces_and_slashes(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    erp.import_docs("Project", [{"name": "HQ / Overhead 2026 #1?", "status": "Open"}])
    doc = client.get_doc("Project", "HQ / Overhead 2026 #1?")
    assert doc["name"] == "HQ / Overhead 2026 #1?" and doc["status"] == "Open"


def test_get_doc_raises_not_found_when_the_document_is_missing(client: ErpNextClient) -> None:
    with pytest.raises(NotFound, match="HTTP 404 DoesNotExistError") as caught:
        client.get_doc("Project", "No Such Project")
    assert isinstance(caught.value, UpstreamRejected) and caught.value.service == "erpnext"


def test_directory_reads_a_missing_project_as_none_when_erpnext_answers_404(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    erp.seed_demo_data(project_manager_field="pm_user")
    (project,) = [p for p in erp.all("Project") if p["project_name"] == "Warehouse Extension"]
    directory = ErpNextDirectory(
        client, clock=lambda: datetime(2026, 11, 23, tzinfo=UTC), manager_field="pm_user"
    )
    assert directory.project_manager(str(project["name"])) == "Ana Lopez"
    assert directory.project_manager("PROJ-9999") is None


def test_update_saves_when_modified_is_current_and_refuses_when_it_is_stale(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    (name,) = new_invoices(erp, 1)
    read = client.get_doc(INVOICE, name)
    saved = client.update(INVOICE, name, {"remarks": "linked"}, modified=str(read["modified"]))
    assert saved["remarks"] == "linked" and saved["modified"] != read["modified"]
    with pytest.raises(DocumentChanged, match="HTTP 417 TimestampMismatchError"):
        client.update(INVOICE, name, {"remarks": "late"}, modified=str(read["modified"]))
    assert erp.get(INVOICE, name)["remarks"] == "linked"
    unconditional = client.update(INVOICE, name, {"remarks": "forced"}, modified=None)
    assert unconditional["remarks"] == "forced"


def test_update_raises_rejected_with_frappes_type_and_message_when_validation_fails(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    (name,) = new_invoices(erp, 1)
    erp.submit(INVOICE, name)
    erp.cancel(INVOICE, name)
    with pytest.raises(UpstreamRejected) as caught:
        client.update(INVOICE, name, {"remarks": "x"}, modified=None)
    assert not isinstance(caught.value, DocumentChanged | NotFound)
    assert "HTTP 417 ValidationError Cannot edit cancelled document" in str(caught.value)


# -- lists -----------------------------------------------------------------------------------


def test_iter_docs_yields_every_row_once_in_modified_order_across_pages(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    created = new_invoices(erp, 10)
    rows = list(client.iter_docs(INVOICE, fields=FIELDS, page_length=3))
    assert names(rows) == created
    assert [row["grand_total"] for row in rows] == list(range(10))
    assert set(rows[0]) == {"grand_total", "name", "modified"}
    assert list_calls(erp) == 4  # 3 + 3 + 3 new rows, then 1


@pytest.mark.parametrize("edited", [0, 2], ids=["earlier-row", "last-row-of-the-page"])
def test_iter_docs_skips_nothing_when_a_row_already_read_is_saved_mid_run(
    erp: ErpNextStandIn, client: ErpNextClient, edited: int
) -> None:
    created = new_invoices(erp, 10)
    reader = client.iter_docs(INVOICE, fields=FIELDS, page_length=3)
    first = [str(next(reader)["name"]) for _ in range(3)]
    # Saved between pages: it moves to the end. An offset (or stamp-offset) page now skips a row.
    erp.db_set(INVOICE, created[edited], "grand_total", 999)
    rest = list(reader)
    assert first == created[:3]
    assert names(rest) == [*created[3:], created[edited]]
    assert rest[-1]["grand_total"] == 999


def test_iter_docs_yields_ties_once_when_one_stamp_spans_page_boundaries(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    created = new_invoices(erp, 12)
    tie = str(erp.get(INVOICE, created[2])["modified"])
    for name in created[3:10]:  # 8 rows (2..9) share one stamp: a full page of ties and more
        erp.set_value_silently(INVOICE, name, "modified", tie, update_modified=False)
    rows = list(client.iter_docs(INVOICE, fields=FIELDS, page_length=3))
    assert names(rows) == created
    assert list_calls(erp) <= 6


def test_iter_docs_reads_a_large_group_of_ties_by_name_when_pages_fill_with_one_stamp(
    erp: ErpNextStandIn,
) -> None:
    created = [
        str(doc["name"])
        for doc in erp.import_docs(INVOICE, [{"grand_total": n} for n in range(60)])
    ]
    tie = str(erp.get(INVOICE, created[5])["modified"])
    for name in created[6:55]:  # 50 rows share one stamp
        erp.set_value_silently(INVOICE, name, "modified", tie, update_modified=False)
    rows_received: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda response, *_, **__: rows_received.append(len(response.json()["data"]))
    )
    client = ErpNextClient(erp.url, KEY, SECRET, timeout_s=2, session=session)
    rows = list(client.iter_docs(INVOICE, fields=FIELDS, page_length=4))
    assert names(rows) == created
    # Without reading the ties by name, each `modified >=` page would bring the group back.
    assert sum(rows_received) <= len(created) + 2 * len(rows_received)


def test_iter_docs_costs_one_list_call_when_nothing_changed_since_the_watermark(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    created = new_invoices(erp, 30)
    watermark = str(erp.get(INVOICE, created[-1])["modified"])
    before = list_calls(erp)
    again = list(
        client.iter_docs(
            INVOICE, fields=FIELDS, filters=[("modified", ">=", watermark)], page_length=20
        )
    )
    assert names(again) == [created[-1]]
    assert list_calls(erp) - before == 1


def test_iter_docs_keeps_caller_filters_and_the_larger_floor_when_both_are_given(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    created = new_invoices(erp, 8)
    for name in created[::2]:
        erp.db_set(INVOICE, name, "customer", "Cobalt Clinics", update_modified=False)
    low = str(erp.get(INVOICE, created[0])["modified"])
    high = str(erp.get(INVOICE, created[3])["modified"])
    filters = [("customer", "=", "Cobalt Clinics"), ("modified", ">=", low)]
    rows = client.iter_docs(
        INVOICE, fields=["customer"], filters=[*filters, ("modified", ">=", high)], page_length=2
    )
    assert names(list(rows)) == [created[4], created[6]]


def test_iter_docs_pages_1000_rows_of_50_in_21_calls(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    erp.import_docs(INVOICE, [{"customer": "Acme Builders", "grand_total": n} for n in range(1000)])
    rows = list(client.iter_docs(INVOICE, fields=FIELDS, page_length=50))
    assert len(rows) == len(set(names(rows))) == 1000
    assert list_calls(erp) <= 21  # as 10,000 rows in pages of 500


def test_iter_docs_pages_by_offset_when_ordered_by_something_else(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    created = new_invoices(erp, 7)
    rows = list(
        client.iter_docs(INVOICE, fields=FIELDS, order_by="grand_total desc", page_length=3)
    )
    assert names(rows) == created[::-1]
    assert list_calls(erp) == 3


# -- files -----------------------------------------------------------------------------------


def test_stream_file_yields_a_private_file_in_bounded_chunks(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    content = bytes(range(256)) * 1200  # 300 KiB: several of the server's 64 KiB writes
    file_doc = erp.add_file("site visit 03.pdf", content, is_private=True)
    with client.stream_file(str(file_doc["file_url"]), chunk_size=8192) as chunks:
        parts = list(chunks)
    assert b"".join(parts) == content
    assert len(parts) > 1 and max(len(part) for part in parts) <= 8192


def test_stream_file_raises_not_found_when_the_file_is_gone(client: ErpNextClient) -> None:
    with pytest.raises(NotFound, match="404"), client.stream_file("/private/files/gone.pdf"):
        pass


def test_stream_file_refuses_a_url_outside_the_site_files(client: ErpNextClient) -> None:
    with (
        pytest.raises(UpstreamRejected, match="not an ERPNext file path"),
        client.stream_file("https://elsewhere.example.com/files/x.pdf"),
    ):
        pass


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_get_doc_raises_unavailable_when_erpnext_throttles_or_fails(
    erp: ErpNextStandIn, client: ErpNextClient, status: int
) -> None:
    erp.faults.fail_next(3, status=status)  # every attempt a read gets inside one call
    with pytest.raises(UpstreamUnavailable, match=f"HTTP {status}"):
        client.get_doc("User", "Administrator")


def test_get_doc_retries_a_blip_when_erpnext_fails_once(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    name = new_invoices(erp, 1)[0]
    erp.faults.fail_next(1, status=503)
    assert client.get_doc(INVOICE, name)["name"] == name
    assert erp.request_count("GET", f"/api/resource/{INVOICE}/{name}") == 2


def test_insert_is_not_repeated_when_erpnext_fails(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    erp.faults.fail_next(1, status=503)
    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        client.insert("ToDo", {"description": "once"})  # a lost answer may hide a created ToDo
    assert erp.request_count("POST", "/api/resource/ToDo") == 1


def test_iter_docs_raises_unavailable_when_a_later_page_fails(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    new_invoices(erp, 5)
    reader = client.iter_docs(INVOICE, fields=FIELDS, page_length=2)
    assert len([next(reader), next(reader)]) == 2
    erp.faults.fail_next(3, status=502, path_prefix="/api/resource/")
    with pytest.raises(UpstreamUnavailable, match="HTTP 502"):
        next(reader)


def test_calls_raise_unavailable_when_erpnext_does_not_answer_in_time() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        slow = ErpNextClient(f"http://127.0.0.1:{port}", KEY, SECRET, timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable, match="Timeout") as caught:
            slow.get_doc(INVOICE, "ACC-SINV-2026-00001")
    assert time.monotonic() - started < 3  # three attempts of 0.3 s and two short waits
    assert SECRET not in str(caught.value)


def test_calls_raise_unavailable_when_nothing_listens() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # bound, not listening: connections are refused
        gone = ErpNextClient(f"http://127.0.0.1:{port}", KEY, SECRET, timeout_s=1)
        with pytest.raises(UpstreamUnavailable, match="ConnectionError"):
            gone.get_doc(INVOICE, "ACC-SINV-2026-00001")


def test_wrong_secret_raises_configuration_error_that_never_shows_a_secret(
    erp: ErpNextStandIn,
) -> None:
    wrong = "wrong-secret-value-9d2e"
    client = ErpNextClient(erp.url, KEY, wrong, timeout_s=2)
    with pytest.raises(ConfigurationError, match="HTTP 401 AuthenticationError") as caught:
        client.get_doc("User", "Administrator")
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert wrong not in repr(client) and KEY in repr(client)


# -- pages, counts, methods, uploads ---------------------------------------------------------------


def test_list_docs_reads_one_page_by_fields_order_and_limit(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    for total in (10, 40, 20, 30):
        erp.insert(INVOICE, {"customer": "Acme Builders", "grand_total": total})

    rows = client.list_docs(
        INVOICE,
        fields=["grand_total"],
        filters=[("grand_total", ">", 10)],
        order_by="grand_total desc",
        limit=2,
    )

    assert rows == [{"grand_total": 40}, {"grand_total": 30}]


def test_list_docs_filters_parents_by_child_rows_when_a_child_doctype_is_named(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    for first, customer in (("Ann", "Acme Builders"), ("Bo", "Blue River Foods")):
        links = [{"link_doctype": "Customer", "link_name": customer}]
        erp.insert("Contact", {"first_name": first, "links": links})

    rows = client.list_docs(
        "Contact",
        fields=["name"],
        filters=[("Dynamic Link", "link_name", "=", "Blue River Foods"), ("first_name", "!=", "")],
    )

    assert rows == [{"name": "Bo-Blue River Foods"}]


def test_list_docs_refuses_a_limit_below_one(client: ErpNextClient) -> None:
    with pytest.raises(ValueError, match="limit"):
        client.list_docs(INVOICE, fields=["name"], limit=0)


def test_count_counts_without_listing_when_filters_are_given(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    new_invoices(erp, 5)

    assert client.count(INVOICE, [("grand_total", ">=", 3)]) == 2
    assert client.count(INVOICE) == 5
    assert list_calls(erp) == 0


def test_call_method_returns_the_message_and_raises_not_found_for_an_unknown_method(
    client: ErpNextClient,
) -> None:
    assert client.call_method("frappe.auth.get_logged_user") == "Administrator"
    with pytest.raises(NotFound, match="HTTP 404"):
        client.call_method("frappe.no_such_method", post={"x": 1})


def test_upload_file_attaches_a_private_file_with_exact_bytes(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    content = bytes(range(256)) * 40

    uploaded = client.upload_file("Issue", "ISS-2026-00001", "pump photo.jpg", content)

    assert uploaded["file_url"] == "/private/files/pump photo.jpg"
    assert (uploaded["attached_to_doctype"], uploaded["attached_to_name"]) == (
        "Issue",
        "ISS-2026-00001",
    )
    with client.stream_file(str(uploaded["file_url"])) as chunks:
        assert b"".join(chunks) == content


def test_upload_file_raises_unavailable_without_the_secret_when_erpnext_fails(
    erp: ErpNextStandIn, client: ErpNextClient
) -> None:
    erp.faults.fail_next(1, status=503, path_prefix="/api/method/upload_file")

    with pytest.raises(UpstreamUnavailable, match="HTTP 503") as caught:
        client.upload_file("Issue", "ISS-1", "a.txt", b"a", is_private=False)

    assert SECRET not in str(caught.value)
    assert erp.all("File") == []


# ---- the same client, built by each test ------------------------------------------------------

LIST_PATH = f"/api/resource/{INVOICE}"


def client_with(erp: ErpNextStandIn, secret: str = SECRET) -> ErpNextClient:
    return ErpNextClient(erp.url, KEY, secret, timeout_s=2)


def invoices(erp: ErpNextStandIn, count: int) -> list[str]:
    return [
        str(erp.insert("Sales Invoice", {"customer": "Acme Builders", "grand_total": n})["name"])
        for n in range(count)
    ]


def test_get_doc_quotes_names_and_a_missing_one_is_not_found(erp: ErpNextStandIn) -> None:
    (project,) = erp.import_docs("Project", [{"name": "HQ / Overhead 2026", "status": "Open"}])
    assert client_with(erp).get_doc("Project", "HQ / Overhead 2026")["status"] == "Open"
    assert project["name"] == "HQ / Overhead 2026"
    with pytest.raises(NotFound, match="404"):
        client_with(erp).get_doc("Project", "No Such Project")


def test_iter_docs_pages_by_modified_and_misses_nothing_changed_mid_run(
    erp: ErpNextStandIn,
) -> None:
    names = invoices(erp, 10)
    reader = client_with(erp).iter_docs("Sales Invoice", fields=["grand_total"], page_length=3)
    first = [next(reader)["name"] for _ in range(3)]
    # Someone edits an invoice already read: offset paging would now skip one unread row.
    erp.db_set("Sales Invoice", names[0], "grand_total", 999)
    rest = [row["name"] for row in reader]
    assert first == names[:3]
    assert rest == [*names[3:], names[0]]  # every row, and the changed one again at its new place
    assert (
        erp.request_count("GET", LIST_PATH) == 4
    )  # pages of 3, 3, 3 and 2 (the 10th and the edited)


def test_a_run_with_nothing_changed_costs_one_list_call(erp: ErpNextStandIn) -> None:
    invoices(erp, 5)
    rows = list(
        client_with(erp).iter_docs("Sales Invoice", fields=["grand_total"], page_length=500)
    )
    stamp = str(rows[-1]["modified"])
    before = erp.request_count("GET", LIST_PATH)
    again = list(
        client_with(erp).iter_docs(
            "Sales Invoice", fields=["grand_total"], filters=[("modified", ">=", stamp)]
        )
    )
    assert [row["name"] for row in again] == [rows[-1]["name"]]
    assert erp.request_count("GET", LIST_PATH) - before == 1


def test_update_with_optimistic_locking(erp: ErpNextStandIn) -> None:
    (name,) = invoices(erp, 1)
    current = client_with(erp).get_doc("Sales Invoice", name)
    saved = client_with(erp).update(
        "Sales Invoice", name, {"remarks": "linked"}, modified=str(current["modified"])
    )
    assert saved["remarks"] == "linked"
    with pytest.raises(DocumentChanged, match="TimestampMismatchError"):
        client_with(erp).update(
            "Sales Invoice", name, {"remarks": "late"}, modified=str(current["modified"])
        )


def test_stream_file_reads_a_private_file_in_chunks(erp: ErpNextStandIn) -> None:
    content = bytes(range(256)) * 1000
    file_doc = erp.add_file("scan.pdf", content, is_private=True)
    with client_with(erp).stream_file(str(file_doc["file_url"]), chunk_size=4096) as chunks:
        parts = list(chunks)
    assert b"".join(parts) == content and max(len(part) for part in parts) <= 4096
    with (
        pytest.raises(UpstreamRejected, match="not an ERPNext file path"),
        client_with(erp).stream_file("https://elsewhere.example.com/x"),
    ):
        pass


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_transient(erp: ErpNextStandIn, status: int) -> None:
    erp.faults.fail_next(3, status=status)  # every attempt a read gets inside one call
    with pytest.raises(UpstreamUnavailable, match=str(status)):
        client_with(erp).get_doc("User", "Administrator")


def test_no_answer_is_transient(erp: ErpNextStandIn) -> None:
    gone = ErpNextClient("http://127.0.0.1:9", KEY, SECRET, timeout_s=1)
    with pytest.raises(UpstreamUnavailable, match="ConnectionError"):
        gone.get_doc("User", "Administrator")


def test_wrong_credentials_are_a_configuration_error_that_never_shows_the_secret(
    erp: ErpNextStandIn,
) -> None:
    wrong = "wrong-secret-value"
    with pytest.raises(ConfigurationError, match="401") as caught:
        client_with(erp, wrong).get_doc("User", "Administrator")
    assert wrong not in str(caught.value) and SECRET not in repr(client_with(erp))
