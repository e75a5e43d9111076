"""JUnit XML reports turned into GitLab's pipeline ``test_report`` and ``test_report_summary``.

One suite per job (named after the job, as GitLab groups reports by job). A test case's
``status`` is ``failed`` (a ``<failure>``), ``error`` (an ``<error>``), ``skipped`` (a
``<skipped>``) or ``success``; its ``system_output`` is the text of that element (its
``message`` attribute when the element is empty), or ``<system-out>`` for a success.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from typing import Any

STATUSES = ("success", "failed", "skipped", "error")
_OUTCOMES = (("failure", "failed"), ("error", "error"), ("skipped", "skipped"))


class JunitError(ValueError):
    """A report could not be read; the message becomes the suite's ``suite_error``."""


def parse_junit(data: bytes) -> list[dict[str, Any]]:
    """The test cases of one JUnit XML document, in document order."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise JunitError(f"JUnit XML parsing failed: {error}") from error
    if root.tag not in ("testsuites", "testsuite", "testcase"):
        raise JunitError(f"JUnit XML parsing failed: unexpected root element <{root.tag}>")
    return [_case(element) for element in _cases(root)]


def _cases(element: ET.Element) -> Iterator[ET.Element]:
    if element.tag == "testcase":
        yield element
        return
    for child in element:
        if child.tag in ("testsuite", "testsuites", "testcase"):
            yield from _cases(child)


def _case(element: ET.Element) -> dict[str, Any]:
    status, output = "success", None
    for tag, outcome in _OUTCOMES:
        found = element.find(tag)
        if found is not None:
            status = outcome
            output = (found.text or "").strip() or found.get("message") or None
            break
    if status == "success":
        system_out = element.find("system-out")
        output = (system_out.text or "").strip() or None if system_out is not None else None
    return {
        "status": status,
        "name": element.get("name", ""),
        "classname": element.get("classname", ""),
        "file": element.get("file"),
        "execution_time": _seconds(element.get("time")),
        "system_output": output,
        "stack_trace": None,
        "attachment_url": None,
        "recent_failures": None,
    }


def _seconds(text: str | None) -> float:
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        return 0.0


def _counts(cases: Iterable[dict[str, Any]]) -> dict[str, Any]:
    cases = list(cases)
    by_status = {status: sum(1 for c in cases if c["status"] == status) for status in STATUSES}
    return {
        "total_time": round(sum(float(c["execution_time"]) for c in cases), 3),
        "total_count": len(cases),
        "success_count": by_status["success"],
        "failed_count": by_status["failed"],
        "skipped_count": by_status["skipped"],
        "error_count": by_status["error"],
    }


def suite_json(
    name: str, cases: list[dict[str, Any]], build_ids: list[int], suite_error: str | None = None
) -> dict[str, Any]:
    """One job's suite; a suite whose report failed to parse lists no cases."""
    shown = [] if suite_error else cases
    return {
        "name": name,
        **_counts(shown),
        "suite_error": suite_error,
        "build_ids": build_ids,
        "test_cases": shown,
    }


def report_json(suites: list[dict[str, Any]]) -> dict[str, Any]:
    """GitLab's ``TestReportEntity``: totals over every suite, then the suites."""
    totals = _counts(case for suite in suites for case in suite["test_cases"])
    return {**totals, "test_suites": suites}


def summary_json(suites: list[dict[str, Any]]) -> dict[str, Any]:
    """GitLab's ``TestReportSummaryEntity``: the same counts without the cases."""
    report = report_json(suites)
    return {
        "total": {
            "time": report["total_time"],
            "count": report["total_count"],
            "success": report["success_count"],
            "failed": report["failed_count"],
            "skipped": report["skipped_count"],
            "error": report["error_count"],
            "suite_error": next((s["suite_error"] for s in suites if s["suite_error"]), None),
        },
        "test_suites": [
            {key: value for key, value in suite.items() if key != "test_cases"} for suite in suites
        ],
    }
