"""The tracker's layout requests: tabs first, then only what the sheet lacks; nothing when set up."""

from __future__ import annotations

import pytest

from shared.sheets.layout import (
    OVERHEAD_RANGE,
    LayoutState,
    layout_requests,
    number_columns,
    summary_formulas,
    summary_row,
)
from shared.sheets.rows import TrackerConfig, header_row, mismatch_formula_for

CONFIG = TrackerConfig(
    site_url="https://erp.example.com", overhead_projects=frozenset({"PROJ-0009"})
)
TABS = {"Invoice Tracker": 0, "Summary": 11, "Overhead": 12}


def set_up() -> LayoutState:
    """The state a finished setup leaves."""
    return LayoutState(
        tabs=TABS,
        header=header_row(CONFIG),
        frozen_rows=1,
        number_formatted=number_columns(CONFIG),
        rule_formulas=frozenset({mismatch_formula_for(CONFIG, OVERHEAD_RANGE)}),
        summary_formulas=summary_row(CONFIG),
        overhead_values=("Overhead projects", "PROJ-0009"),
    )


def kinds(requests: list[dict[str, object]]) -> list[str]:
    return [next(iter(request)) for request in requests]


def test_missing_tabs_are_added_first_and_alone() -> None:
    requests = layout_requests(LayoutState(tabs={"Sheet1": 0}), CONFIG)
    assert kinds(requests) == ["addSheet"] * 3


def test_fresh_tabs_get_header_freeze_formats_rule_summary_and_overhead_list() -> None:
    requests = layout_requests(LayoutState(tabs=TABS), CONFIG)
    assert sorted(kinds(requests)) == sorted(
        [
            "updateCells",
            "updateSheetProperties",
            "repeatCell",
            "repeatCell",
            "addConditionalFormatRule",
            "updateCells",
            "updateCells",
        ]
    )


def test_nothing_is_requested_when_the_sheet_is_set_up() -> None:
    assert layout_requests(set_up(), CONFIG) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"header": ("Invoice",)}, ["updateCells"]),
        ({"frozen_rows": 0}, ["updateSheetProperties"]),
        ({"rule_formulas": frozenset()}, ["addConditionalFormatRule"]),
        ({"overhead_values": ("Overhead projects",)}, ["updateCells"]),
    ],
)
def test_only_the_missing_part_is_requested(change: dict[str, object], expected: list[str]) -> None:
    state = set_up()
    broken = LayoutState(**{**state.__dict__, **change})
    assert kinds(layout_requests(broken, CONFIG)) == expected


def test_summary_totals_exclude_cancelled_and_deleted_rows_and_group_by_project_and_month() -> None:
    by_project, by_month = summary_formulas(CONFIG)
    assert by_project.startswith("=QUERY('Invoice Tracker'!A:N, \"select C, sum(F)")
    assert "group by C" in by_project and "group by E" in by_month
    assert "J <> 'Cancelled'" in by_project and "J <> 'Deleted'" in by_month


def test_mismatch_rule_covers_data_rows_with_the_configured_columns() -> None:
    (rule,) = [
        r
        for r in layout_requests(LayoutState(tabs=TABS), CONFIG)
        if "addConditionalFormatRule" in r
    ]
    body = rule["addConditionalFormatRule"]["rule"]  # type: ignore[index]
    assert body["ranges"][0]["startRowIndex"] == 1
    condition = body["booleanRule"]["condition"]
    assert condition["type"] == "CUSTOM_FORMULA"
    assert condition["values"][0]["userEnteredValue"] == mismatch_formula_for(
        CONFIG, OVERHEAD_RANGE
    )
