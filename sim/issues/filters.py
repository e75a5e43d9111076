"""The filters and ordering of ``GET /projects/:id/issues``, as GitLab documents them.

Supported: ``state`` (opened|closed|all), ``labels`` (comma list, every label required;
``None`` = no label, ``Any`` = at least one), ``not[labels]``, ``iids[]``, ``search`` (title
and description, case-insensitive; ``in=title`` or ``in=description`` narrows it),
``author_id``, ``assignee_id`` (an id, ``None`` or ``Any``), ``created_after``/``_before``,
``updated_after``/``_before`` (inclusive, as GitLab compares), ``order_by``
(created_at|updated_at|title) and ``sort`` (asc|desc, default desc).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from sim.core.http import Params, fail, invalid, iso, parse_iso
from sim.issues.records import IssueRecord

Predicate = Callable[[IssueRecord], bool]

_ORDER_COLUMNS = ("created_at", "updated_at", "title")
_TIME_FILTERS = (
    ("created_after", "created_at", 1),
    ("created_before", "created_at", -1),
    ("updated_after", "updated_at", 1),
    ("updated_before", "updated_at", -1),
)


def timestamp_param(params: Params, name: str) -> str | None:
    """A parameter as our stored timestamp format, so strings compare chronologically."""
    text = params.get_str(name)
    if text is None:
        return None
    try:
        moment = parse_iso(text)
    except ValueError:
        invalid(name)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment)


def _label_predicates(params: Params) -> list[Predicate]:
    predicates: list[Predicate] = []
    wanted = params.get_list("labels")
    if wanted == ["None"]:
        predicates.append(lambda r: not r.labels)
    elif wanted == ["Any"]:
        predicates.append(lambda r: bool(r.labels))
    elif wanted:
        required = set(wanted)
        predicates.append(lambda r: required <= set(r.label_names))
    excluded = params.get_list("not[labels]")
    if excluded:
        banned = set(excluded)
        predicates.append(lambda r: not banned & set(r.label_names))
    return predicates


def _assignee_predicate(params: Params) -> Predicate | None:
    value = params.get_str("assignee_id")
    if value is None:
        return None
    if value.lower() == "none":
        return lambda r: not r.assignees
    if value.lower() == "any":
        return lambda r: bool(r.assignees)
    if not value.isdigit():
        invalid("assignee_id")
    return lambda r: any(int(user["id"]) == int(value) for user in r.assignees)


def _search_predicate(params: Params) -> Predicate | None:
    needle = (params.get_str("search") or "").lower()
    if not needle:
        return None
    fields = params.get_list("in") or ["title", "description"]
    if not set(fields) <= {"title", "description"}:
        invalid("in")
    return lambda r: any(needle in (r.row[field] or "").lower() for field in fields)


def issue_predicates(params: Params) -> list[Predicate]:
    predicates = _label_predicates(params)
    state = params.get_str("state", "all") or "all"
    if state not in ("opened", "closed", "all"):
        fail(400, "state does not have a valid value", key="error")
    if state != "all":
        predicates.append(lambda r: r.row["state"] == state)
    iids = params.get_int_list("iids")
    if iids is not None:
        wanted_iids = set(iids)
        predicates.append(lambda r: r.iid in wanted_iids)
    author_id = params.get_int("author_id")
    if author_id is not None:
        predicates.append(lambda r: int(r.row["author_id"]) == author_id)
    for predicate in (_assignee_predicate(params), _search_predicate(params)):
        if predicate is not None:
            predicates.append(predicate)
    for name, column, sign in _TIME_FILTERS:
        bound = timestamp_param(params, name)
        if bound is not None:
            predicates.append(_time_bound(column, bound, sign))
    return predicates


def sql_narrowing(params: Params) -> tuple[str, list[Any]]:
    """SQL conditions (`` AND ...``) that leave out, before anything is loaded, rows the
    state and the time bounds would drop anyway: a delta listing (``updated_after``) of a
    project with thousands of issues loads the few that changed. ``issue_predicates`` still
    checks every row (and refuses a bad value)."""
    clauses: list[str] = []
    args: list[Any] = []
    state = params.get_str("state", "all") or "all"
    if state in ("opened", "closed"):
        clauses.append("state = ?")
        args.append(state)
    for name, column, sign in _TIME_FILTERS:
        bound = timestamp_param(params, name)
        if bound is not None:
            clauses.append(f"{column} {'>=' if sign > 0 else '<='} ?")
            args.append(bound)
    return "".join(f" AND {clause}" for clause in clauses), args


def _time_bound(column: str, bound: str, sign: int) -> Predicate:
    if sign > 0:
        return lambda r: str(r.row[column]) >= bound
    return lambda r: str(r.row[column]) <= bound


def filter_and_sort(records: list[IssueRecord], params: Params) -> list[IssueRecord]:
    predicates = issue_predicates(params)
    order_by = params.get_str("order_by", "created_at") or "created_at"
    if order_by not in _ORDER_COLUMNS:
        fail(400, "order_by does not have a valid value", key="error")
    sort = params.get_str("sort", "desc") or "desc"
    if sort not in ("asc", "desc"):
        fail(400, "sort does not have a valid value", key="error")
    kept = [r for r in records if all(predicate(r) for predicate in predicates)]

    def key(record: IssueRecord) -> tuple[Any, int]:
        return (record.row[order_by], record.id)

    return sorted(kept, key=key, reverse=sort == "desc")
