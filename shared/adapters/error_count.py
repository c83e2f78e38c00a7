"""Counting pending error records in Firestore, for the `bridge_pending_errors` gauge."""

from __future__ import annotations

from typing import Any

from google.cloud.firestore_v1.base_query import FieldFilter

from shared.adapters.firestore import ERRORS, FirestoreConnection, translated
from shared.platform.failures import ErrorStatus


def count_pending_errors(connection: FirestoreConnection) -> int:
    """How many error records are pending: one aggregation query, no documents read."""
    query: Any = (  # the SDK types count() as returning a class
        connection.collection(ERRORS)
        .where(filter=FieldFilter("status", "==", ErrorStatus.PENDING.value))
        .count(alias="pending")
    )
    with translated("count pending errors"):
        results = query.get(retry=connection.retry, timeout=connection.timeout_s)
    return sum(int(result.value) for batch in results for result in batch)
