"""Typed values of CI results: jobs, and test reports with their suites and cases, each
read from GitLab's JSON in one place (:mod:`forge.fields` names the field when GitLab
answers something unexpected).

Shapes: ``GET /projects/:id/pipelines/:id/jobs`` and ``GET /projects/:id/jobs/:id`` (a job
has ``id``, ``name``, ``status``, ``stage``, ``allow_failure``, ``duration``, ``web_url``,
``pipeline`` and ``artifacts``, each artifact with its ``file_type``), and
``GET /projects/:id/pipelines/:id/test_report`` (counts, ``test_suites``, each with
``test_cases`` of ``status``, ``name``, ``classname``, ``system_output``). The test cases of
a JUnit file read from a job's artifacts (:mod:`forge.junit`) have the test report's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forge.fields import (
    UnexpectedAnswer,
    flag,
    listed,
    nested,
    number_or_none,
    record,
    text,
    whole,
    whole_or_none,
)

JOB_FINISHED = frozenset({"success", "failed", "canceled", "skipped"})


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    status: str
    stage: str
    allow_failure: bool
    web_url: str
    duration: float | None  # seconds; None while it runs
    created_at: str
    finished_at: str
    pipeline_id: int | None
    artifact_types: tuple[str, ...]  # the ``file_type`` of each artifact (``junit``, ...)

    @classmethod
    def of(cls, data: Any) -> Job:
        kind = "job"
        job = record(data, kind)
        pipeline = nested(job, "pipeline", kind)
        artifacts = tuple(
            text(record(item, kind, "artifacts"), "file_type", "job artifact")
            for item in listed(job, "artifacts", kind)
        )
        return cls(
            id=whole(job, "id", kind),
            name=text(job, "name", kind),
            status=text(job, "status", kind),
            stage=text(job, "stage", kind),
            allow_failure=flag(job, "allow_failure", kind),
            web_url=text(job, "web_url", kind),
            duration=number_or_none(job, "duration", kind),
            created_at=text(job, "created_at", kind),
            finished_at=text(job, "finished_at", kind),
            pipeline_id=whole_or_none(pipeline, "id", "job's pipeline") if pipeline else None,
            artifact_types=artifacts,
        )

    @property
    def finished(self) -> bool:
        return self.status in JOB_FINISHED

    @property
    def has_junit(self) -> bool:
        return "junit" in self.artifact_types


def _output(case: Any, key: str) -> str:
    """``system_output`` is a string in GitLab's test report, a list of lines in some
    versions' JUnit parsing, and null for a passing case."""
    value = case.get(key)
    if isinstance(value, list):
        return "\n".join(str(line) for line in value)
    return text(case, key, "test case")


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # a GitLab test case, not a pytest class

    name: str
    classname: str
    status: str  # success, failed, error, skipped
    system_output: str

    @classmethod
    def of(cls, data: Any) -> TestCase:
        case = record(data, "test case")
        return cls(
            name=text(case, "name", "test case"),
            classname=text(case, "classname", "test case"),
            status=text(case, "status", "test case"),
            system_output=_output(case, "system_output"),
        )

    @property
    def full_name(self) -> str:
        """``classname.name``, the name crewline records and compares tests by."""
        return f"{self.classname}.{self.name}".strip(".")

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "error")


@dataclass(frozen=True)
class TestSuite:
    __test__ = False

    name: str
    test_cases: tuple[TestCase, ...]

    @classmethod
    def of(cls, data: Any) -> TestSuite:
        suite = record(data, "test suite")
        return cls(
            name=text(suite, "name", "test suite"),
            test_cases=tuple(TestCase.of(c) for c in listed(suite, "test_cases", "test suite")),
        )


@dataclass(frozen=True)
class TestReport:
    """A pipeline's test report: every job's JUnit reports, merged by GitLab."""

    __test__ = False

    total_count: int
    success_count: int
    failed_count: int
    skipped_count: int
    error_count: int
    test_suites: tuple[TestSuite, ...]

    @classmethod
    def of(cls, data: Any) -> TestReport:
        kind = "test report"
        report = record(data, kind)
        return cls(
            total_count=_count(report, "total_count"),
            success_count=_count(report, "success_count"),
            failed_count=_count(report, "failed_count"),
            skipped_count=_count(report, "skipped_count"),
            error_count=_count(report, "error_count"),
            test_suites=tuple(TestSuite.of(s) for s in listed(report, "test_suites", kind)),
        )

    def failed_tests(self) -> list[str]:
        """``classname.name`` of every failed or errored case (the suite's name where the
        case has no class), sorted, each once."""
        return sorted(
            {
                f"{case.classname or suite.name}.{case.name}"
                for suite in self.test_suites
                for case in suite.test_cases
                if case.failed
            }
        )


def _count(report: Any, key: str) -> int:
    found = whole_or_none(report, key, "test report")
    if found is not None and found < 0:
        raise UnexpectedAnswer("test report", key, found, "a count of zero or more")
    return found or 0
