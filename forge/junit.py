"""JUnit XML reports read into GitLab's test case shape (pure: no I/O).

A test case's ``status`` is ``failed`` (a ``<failure>``), ``error`` (an ``<error>``),
``skipped`` (a ``<skipped>``) or ``success``; its ``system_output`` is the text of that
element (its ``message`` attribute when the element is empty), or ``<system-out>`` for a
success. The simulator's runner reads the reports its jobs write with it, and the flaky-test
detector reads the report of each job, retried ones included, from the job's artifacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser is imported on first use: an idle host reads no report
    import xml.etree.ElementTree as ET

STATUSES = ("success", "failed", "skipped", "error")
_OUTCOMES = (("failure", "failed"), ("error", "error"), ("skipped", "skipped"))


class JunitError(ValueError):
    """A report could not be read; the message becomes the suite's ``suite_error``."""


def parse_junit(data: bytes) -> list[dict[str, Any]]:
    """The test cases of one JUnit XML document, in document order."""
    import xml.etree.ElementTree as ET

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
