"""JUnit XML reports turned into GitLab's pipeline ``test_report`` and ``test_report_summary``.

One suite per job (named after the job, as GitLab groups reports by job). The cases are
read by :mod:`forge.junit`; :func:`render_junit` writes a job's cases back as the JUnit file
its artifacts serve (``GET /jobs/:id/artifacts/<path>``), retried jobs included.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from forge.junit import STATUSES, JunitError, parse_junit

__all__ = ["STATUSES", "JunitError", "parse_junit", "render_junit"]

_ELEMENT = {"failed": "failure", "error": "error", "skipped": "skipped"}


def render_junit(suite: str, cases: list[dict[str, Any]]) -> bytes:
    """``cases`` (as :func:`parse_junit` reads them) as one JUnit XML document."""
    root = ET.Element("testsuite", name=suite, tests=str(len(cases)))
    for case in cases:
        element = ET.SubElement(
            root,
            "testcase",
            name=str(case.get("name") or ""),
            classname=str(case.get("classname") or ""),
            time=f"{float(case.get('execution_time') or 0.0):.3f}",
        )
        if case.get("file"):
            element.set("file", str(case["file"]))
        output = case.get("system_output")
        tag = _ELEMENT.get(str(case.get("status")))
        if tag is not None:
            ET.SubElement(element, tag).text = output
        elif output:
            ET.SubElement(element, "system-out").text = output
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


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
