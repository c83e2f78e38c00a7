"""The ERPNext REST client against the ERPNext stand-in (Frappe's answers, faults and all)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.erpnext import ErpNextStandIn
from shared.adapters.erpnext import ErpNextClient
from shared.errors import (
    ConfigurationError,
    DocumentChanged,
    NotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)

SECRET = "s3cret-api-value"
LIST = "/api/resource/Sales Invoice"


@pytest.fixture
def erp() -> Iterator[ErpNextStandIn]:
    with ErpNextStandIn(api_key="bridge", api_secret=SECRET) as running:
        yield running


def client(erp: ErpNextStandIn, secret: str = SECRET) -> ErpNextClient:
    return ErpNextClient(erp.url, "bridge", secret, timeout_s=2)


def invoices(erp: ErpNextStandIn, count: int) -> list[str]:
    return [
        str(erp.insert("Sales Invoice", {"customer": "Acme Builders", "grand_total": n})["name"])
        for n in range(count)
    ]


def test_get_doc_quotes_names_and_a_missing_one_is_not_found(erp: ErpNextStandIn) -> None:
    (project,) = erp.import_docs("Project", [{"name": "HQ / Overhead 2026", "status": "Open"}])
    assert client(erp).get_doc("Project", "HQ / Overhead 2026")["status"] == "Open"
    assert project["name"] == "HQ / Overhead 2026"
    with pytest.raises(NotFound, match="404"):
        client(erp).get_doc("Project", "No Such Project")


def test_iter_docs_pages_by_modified_and_misses_nothing_changed_mid_run(
    erp: ErpNextStandIn,
) -> None:
    names = invoices(erp, 10)
    reader = client(erp).iter_docs("Sales Invoice", fields=["grand_total"], page_length=3)
    first = [next(reader)["name"] for _ in range(3)]
    # Someone edits an invoice already read: offset paging would now skip one unread row.
    erp.db_set("Sales Invoice", names[0], "grand_total", 999)
    rest = [row["name"] for row in reader]
    assert first == names[:3]
    assert rest == [*names[3:], names[0]]  # every row, and the changed one again at its new place
    assert erp.request_count("GET", LIST) == 4  # pages of 3, 3, 3 and 2 (the 10th and the edited)


def test_a_run_with_nothing_changed_costs_one_list_call(erp: ErpNextStandIn) -> None:
    invoices(erp, 5)
    rows = list(client(erp).iter_docs("Sales Invoice", fields=["grand_total"], page_length=500))
    stamp = str(rows[-1]["modified"])
    before = erp.request_count("GET", LIST)
    again = list(
        client(erp).iter_docs(
            "Sales Invoice", fields=["grand_total"], filters=[("modified", ">=", stamp)]
        )
    )
    assert [row["name"] for row in again] == [rows[-1]["name"]]
    assert erp.request_count("GET", LIST) - before == 1


def test_update_with_optimistic_locking(erp: ErpNextStandIn) -> None:
    (name,) = invoices(erp, 1)
    current = client(erp).get_doc("Sales Invoice", name)
    saved = client(erp).update(
        "Sales Invoice", name, {"remarks": "linked"}, modified=str(current["modified"])
    )
    assert saved["remarks"] == "linked"
    with pytest.raises(DocumentChanged, match="TimestampMismatchError"):
        client(erp).update(
            "Sales Invoice", name, {"remarks": "late"}, modified=str(current["modified"])
        )


def test_stream_file_reads_a_private_file_in_chunks(erp: ErpNextStandIn) -> None:
    content = bytes(range(256)) * 1000
    file_doc = erp.add_file("scan.pdf", content, is_private=True)
    with client(erp).stream_file(str(file_doc["file_url"]), chunk_size=4096) as chunks:
        parts = list(chunks)
    assert b"".join(parts) == content and max(len(part) for part in parts) <= 4096
    with (
        pytest.raises(UpstreamRejected, match="not an ERPNext file URL"),
        client(erp).stream_file("https://elsewhere.example.com/x"),
    ):
        pass


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_transient(erp: ErpNextStandIn, status: int) -> None:
    erp.faults.fail_next(3, status=status)  # every attempt a read gets inside one call
    with pytest.raises(UpstreamUnavailable, match=str(status)):
        client(erp).get_doc("User", "Administrator")


def test_no_answer_is_transient(erp: ErpNextStandIn) -> None:
    gone = ErpNextClient("http://127.0.0.1:9", "bridge", SECRET, timeout_s=1)
    with pytest.raises(UpstreamUnavailable, match="ConnectionError"):
        gone.get_doc("User", "Administrator")


def test_wrong_credentials_are_a_configuration_error_that_never_shows_the_secret(
    erp: ErpNextStandIn,
) -> None:
    wrong = "wrong-secret-value"
    with pytest.raises(ConfigurationError, match="401") as caught:
        client(erp, secret=wrong).get_doc("User", "Administrator")
    assert wrong not in str(caught.value) and SECRET not in repr(client(erp))
