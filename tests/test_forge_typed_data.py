"""GitLab's JSON for discussions, diffs, jobs, pipelines and test reports read into typed
values in one place (SPEC §12): the shapes GitLab's REST API v4 documents, what is absent
or null in older versions, and an error naming the field when an answer is not GitLab's."""

from __future__ import annotations

from typing import Any

import pytest

from forge.ci_types import Job, TestCase, TestReport
from forge.fields import UnexpectedAnswer
from forge.mr_types import DiffRefs, Discussion, DiscussionNote, FileDiff, Position
from forge.types import MergeRequest, Pipeline

AUTHOR = {"id": 7, "username": "alice", "name": "Alice"}
POSITION = {
    "base_sha": "b" * 40,
    "start_sha": "s" * 40,
    "head_sha": "h" * 40,
    "old_path": "app.py",
    "new_path": "app.py",
    "position_type": "text",
    "old_line": None,
    "new_line": 12,
    "line_range": None,
}


def note(**over: Any) -> dict[str, Any]:
    data = {
        "id": 301,
        "type": "DiffNote",
        "body": "Rename this",
        "author": AUTHOR,
        "created_at": "2026-12-04T10:00:00.000Z",
        "system": False,
        "noteable_type": "MergeRequest",
        "resolvable": True,
        "resolved": False,
        "resolved_by": None,
        "position": POSITION,
    }
    return {**data, **over}


def test_a_diff_discussion_reads_its_notes_position_and_resolution() -> None:
    thread = Discussion.of(
        {"id": "6a9c1750b37d5", "individual_note": False, "notes": [note(), note(id=302)]}
    )
    first = thread.first
    assert first is not None and thread.id == "6a9c1750b37d5" and len(thread.notes) == 2
    assert (first.id, first.author, first.author_id, first.body) == (301, "alice", 7, "Rename this")
    assert first.position == Position(
        "b" * 40, "s" * 40, "h" * 40, "app.py", "app.py", None, 12, "text"
    )
    assert thread.unresolved and thread.carries("Rename") and not thread.carries("absent")


def test_resolved_and_unresolvable_discussions_are_not_open() -> None:
    resolved = Discussion.of({"id": "a", "notes": [note(resolved=True)]})
    # An individual note (a plain comment) comes without resolvable fields in older GitLab.
    plain = {k: v for k, v in note().items() if k not in ("resolvable", "resolved", "position")}
    comment = Discussion.of({"id": "b", "individual_note": True, "notes": [plain]})
    assert not resolved.unresolved and not comment.unresolved
    assert comment.first is not None and comment.first.position is None
    assert not Discussion.of({"id": "c", "notes": []}).unresolved


def test_a_position_on_a_new_line_is_the_payload_gitlab_takes() -> None:
    refs = DiffRefs.of({"base_sha": "b1", "head_sha": "h1", "start_sha": None})
    assert refs == DiffRefs("b1", "h1", "b1")  # no start sha: the base is the start
    assert Position.on_new_line(refs, "pkg/a.py", 3).payload() == {
        "position_type": "text",
        "base_sha": "b1",
        "start_sha": "b1",
        "head_sha": "h1",
        "old_path": "pkg/a.py",
        "new_path": "pkg/a.py",
        "new_line": 3,
    }
    assert DiffRefs.of(None) is None
    assert DiffRefs.of({"base_sha": None, "head_sha": None, "start_sha": None}) is None


def test_a_merge_request_types_its_head_pipeline_and_diff_refs() -> None:
    data = {
        "iid": 3,
        "id": 30,
        "sha": "h1",
        "head_pipeline": {"id": 9, "sha": "h1", "ref": "b", "status": "failed", "web_url": "u"},
        "diff_refs": {"base_sha": "b1", "head_sha": "h1", "start_sha": "s1"},
    }
    mr = MergeRequest.of("demo/app", data)
    assert mr.head_pipeline == Pipeline(9, "b", "h1", "failed", "u")
    assert mr.diff_refs == DiffRefs("b1", "h1", "s1")
    bare = MergeRequest.of("demo/app", {"iid": 3, "id": 30, "head_pipeline": {}})
    assert bare.head_pipeline is None and bare.diff_refs is None


def test_a_pipeline_in_full_carries_its_yaml_errors() -> None:
    full = Pipeline.of({"id": 5, "status": "failed", "yaml_errors": "jobs:x config invalid"})
    assert full.yaml_errors == "jobs:x config invalid"
    assert Pipeline.of({"id": 5, "status": "failed", "yaml_errors": None}).yaml_errors == ""


def test_a_file_diff_reads_paths_text_and_kind() -> None:
    diff = FileDiff.of(
        {
            "old_path": "a.py",
            "new_path": "b.py",
            "a_mode": "100644",
            "b_mode": "100644",
            "diff": "@@ -1 +1 @@\n-x\n+y\n",
            "new_file": False,
            "renamed_file": True,
            "deleted_file": False,
            "generated_file": None,
        }
    )
    assert (diff.old_path, diff.new_path, diff.renamed_file) == ("a.py", "b.py", True)
    assert diff.diff.endswith("+y\n") and not diff.new_file and not diff.deleted_file


def test_a_job_reads_its_state_duration_pipeline_and_junit_artifact() -> None:
    job = Job.of(
        {
            "id": 44,
            "name": "test",
            "stage": "test",
            "status": "failed",
            "allow_failure": False,
            "duration": 12.5,
            "created_at": "2026-12-04T10:00:00Z",
            "finished_at": "2026-12-04T10:01:00Z",
            "web_url": "http://gitlab/demo/app/-/jobs/44",
            "pipeline": {"id": 9, "sha": "h1", "status": "failed"},
            "artifacts": [
                {"file_type": "archive", "size": 10, "filename": "artifacts.zip"},
                {"file_type": "junit", "size": 3, "filename": "junit.xml.gz"},
            ],
        }
    )
    assert (job.id, job.name, job.status, job.pipeline_id, job.duration) == (
        44,
        "test",
        "failed",
        9,
        12.5,
    )
    assert job.finished and job.has_junit and not job.allow_failure
    running = Job.of({"id": 45, "name": "lint", "status": "running", "duration": None})
    assert not running.finished and not running.has_junit and running.duration is None
    assert running.pipeline_id is None


def test_a_test_report_names_failed_and_errored_cases_once() -> None:
    report = TestReport.of(
        {
            "total_time": 1.5,
            "total_count": 4,
            "success_count": 1,
            "failed_count": 2,
            "skipped_count": 0,
            "error_count": 1,
            "test_suites": [
                {
                    "name": "unit",
                    "total_count": 4,
                    "suite_error": None,
                    "test_cases": [
                        {"status": "failed", "name": "t_b", "classname": "pkg.B"},
                        {"status": "error", "name": "t_a", "classname": "pkg.A"},
                        {"status": "failed", "name": "smoke", "classname": None},
                        {"status": "success", "name": "ok", "classname": "pkg.A"},
                    ],
                }
            ],
        }
    )
    assert (report.total_count, report.failed_count, report.error_count) == (4, 2, 1)
    assert report.failed_tests() == ["pkg.A.t_a", "pkg.B.t_b", "unit.smoke"]
    assert TestReport.of({}).failed_tests() == []


def test_a_test_case_reads_its_output_as_a_string_or_a_list_of_lines() -> None:
    listed = TestCase.of(
        {"status": "failed", "name": "t", "classname": "", "system_output": ["a", "b"]}
    )
    assert listed.system_output == "a\nb" and listed.full_name == "t" and listed.failed
    texted = TestCase.of(
        {"status": "success", "name": "t", "classname": "C", "system_output": None}
    )
    assert texted.system_output == "" and texted.full_name == "C.t" and not texted.failed


@pytest.mark.parametrize(
    ("read", "data", "kind", "field"),
    [
        (Discussion.of, {"notes": []}, "discussion", "id"),
        (Discussion.of, {"id": "a", "notes": {"id": 1}}, "discussion", "notes"),
        (DiscussionNote.of, {"id": "x1", "body": ""}, "discussion note", "id"),
        (DiscussionNote.of, {"id": 1, "resolved": "yes"}, "discussion note", "resolved"),
        (DiscussionNote.of, {"id": 1, "position": "here"}, "discussion note", "position"),
        (DiscussionNote.of, {"id": 1, "author": "alice"}, "discussion note", "author"),
        (Job.of, {"name": "test"}, "job", "id"),
        (Job.of, {"id": 1, "duration": "long"}, "job", "duration"),
        (Job.of, {"id": 1, "artifacts": "junit"}, "job", "artifacts"),
        (TestReport.of, {"total_count": -1}, "test report", "total_count"),
        (TestReport.of, {"test_suites": [{"test_cases": [5]}]}, "test case", "the answer"),
        (FileDiff.of, ["not", "an", "object"], "merge request diff", "the answer"),
    ],
)
def test_an_answer_that_is_not_gitlabs_names_the_field(
    read: Any, data: Any, kind: str, field: str
) -> None:
    with pytest.raises(UnexpectedAnswer) as raised:
        read(data)
    assert (raised.value.kind, raised.value.field) == (kind, field)
    assert f"GitLab answered a {kind} whose {field!r}" in str(raised.value)
    assert "gitlab.url" in str(raised.value)  # says what to check
