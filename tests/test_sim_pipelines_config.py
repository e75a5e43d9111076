"""The pipeline layer's pure parts: the ``.gitlab-ci.yml`` subset, GitLab's status rules,
JUnit parsing, the bounded trace; and the demo seed's CI job running for real."""

from __future__ import annotations

import pytest

from sim.core.app import RunningSim
from sim.pipelines.ci_config import CiConfigError, parse_ci_config, parse_duration
from sim.pipelines.ci_status import JobState, advance, composite_status
from sim.pipelines.junit import JunitError, parse_junit, report_json, suite_json
from sim.pipelines.runner import Trace
from tests.support.sim_mr import BOT_TOKEN, client
from tests.support.sim_pipelines import only_pipeline, wait_idle

FULL = """
variables:
  GLOBAL: one
  NUMBER: 3
  FLAG: true
default:
  before_script: [echo setup]
.template: &template
  stage: check
  variables:
    GLOBAL: overridden
stages: [check, ship]
image: python:3.12
lint:
  <<: *template
  script: echo lint
  tags: [docker]
  rules:
    - if: $CI_COMMIT_BRANCH
unit:
  stage: check
  before_script: []
  script:
    - - echo nested
    - echo flat
  after_script: [echo cleanup]
  allow_failure: true
  artifacts:
    when: always
    reports:
      junit: [reports/*.xml, extra.xml]
publish:
  stage: ship
  when: on_failure
  timeout: 1h 30m
  script: [echo publish]
manual-job:
  stage: ship
  when: manual
  script: [echo on request]
"""


def test_the_supported_subset_is_read_and_the_rest_ignored() -> None:
    config = parse_ci_config(FULL)
    assert config.stages == [".pre", "check", "ship", ".post"]
    assert config.used_stages == ["check", "ship"]
    jobs = {job.name: job for job in config.jobs}
    assert list(jobs) == ["lint", "unit", "publish", "manual-job"]  # hidden jobs never run
    lint, unit, publish = jobs["lint"], jobs["unit"], jobs["publish"]
    # A manual job (outside rules) is optional unless it says allow_failure: false.
    assert (jobs["manual-job"].when, jobs["manual-job"].allow_failure) == ("manual", True)
    assert (lint.stage, lint.script, lint.before_script) == ("check", ["echo lint"], ["echo setup"])
    assert lint.variables == {"GLOBAL": "overridden", "NUMBER": "3", "FLAG": "true"}
    assert unit.script == ["echo nested", "echo flat"] and unit.before_script == []
    assert (unit.after_script, unit.allow_failure) == (["echo cleanup"], True)
    assert (unit.junit, unit.artifacts_when) == (["reports/*.xml", "extra.xml"], "always")
    assert (publish.when, publish.timeout, publish.stage_idx) == ("on_failure", 5400.0, 2)
    default_stage = parse_ci_config("job:\n  script: ['true']\n").jobs[0]
    assert (default_stage.stage, default_stage.timeout) == ("test", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages: [a\n", "(.gitlab-ci.yml): "),
        ("- just\n- a list\n", "Invalid configuration format"),
        (".hidden:\n  script: [x]\n", "jobs config should contain at least one visible job"),
        ("job:\n  stage: test\n", "jobs:job config should implement the script:, run:, or"),
        ("job: echo\n", "jobs:job config should be a hash"),
        ("job:\n  script: [{a: 1}]\n", "jobs:job:script config should be a string or a nested"),
        ("job:\n  script: []\n", "jobs:job:script config can't be blank"),
        ("job:\n  stage: x\n  script: [a]\n", "job job: chosen stage x does not exist;"),
        ("stages: test\njob:\n  script: [a]\n", "stages config should be an array of strings"),
        ("job:\n  when: sometimes\n  script: [a]\n", "jobs:job when unknown value: sometimes"),
        ("job:\n  allow_failure: maybe\n  script: [a]\n", "jobs:job allow failure should be"),
        ("job:\n  timeout: soon\n  script: [a]\n", "jobs:job timeout should be a duration"),
        ("job:\n  variables: [A]\n  script: [a]\n", "jobs:job:variables config should be a"),
        (
            "job:\n  script: [a]\n  artifacts:\n    reports:\n      junit: {a: 1}\n",
            "jobs:job:artifacts:reports junit should be an array of strings or a string",
        ),
    ],
)
def test_invalid_configurations_are_refused_in_gitlab_words(text: str, message: str) -> None:
    with pytest.raises(CiConfigError) as refused:
        parse_ci_config(text)
    assert str(refused.value).startswith(message)


def test_yaml_syntax_errors_name_the_line() -> None:
    with pytest.raises(CiConfigError) as refused:
        parse_ci_config("job:\n  script:\n    - a\n  bad: [\n")
    assert str(refused.value) == (
        "(.gitlab-ci.yml): expected the node content, but found '<stream end>' at line 5 column 1"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), (45, 45.0), ("30s", 30.0), ("10m", 600.0), ("1h 30m", 5400.0),
     ("2 minutes", 120.0), ("1 hour 5 seconds", 3605.0)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "5 parsecs", True, -3])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def jobs(
    *specs: tuple[int, str] | tuple[int, str, str] | tuple[int, str, str, bool],
) -> list[JobState]:
    return [
        JobState(number, spec[0], spec[1], *spec[2:])  # type: ignore[arg-type]
        for number, spec in enumerate(specs, start=1)
    ]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], None),
        (["skipped", "skipped"], "skipped"),
        (["success", "skipped"], "success"),
        (["created", "created"], "created"),
        (["pending", "created"], "pending"),
        (["running", "created"], "running"),
        (["success", "created"], "running"),
        (["success", "canceled"], "canceled"),
        (["failed", "skipped"], "failed"),
        (["failed", "canceled"], "failed"),
        (["failed", "running"], "running"),
    ],
)
def test_composite_status_follows_gitlab(statuses: list[str], expected: str | None) -> None:
    states = [JobState(n, 0, status) for n, status in enumerate(statuses)]
    assert composite_status(states) == expected


def test_allowed_failures_do_not_fail_the_pipeline_or_stop_later_stages() -> None:
    states = jobs((0, "failed", "on_success", True), (0, "success"), (1, "created"))
    assert composite_status(states) == "running"
    assert advance(states) == {3: "pending"}
    finished = jobs((0, "failed", "on_success", True), (1, "success"))
    assert composite_status(finished) == "success"


def test_stages_advance_in_order_and_when_decides_after_a_failure() -> None:
    waiting = jobs((0, "created"), (0, "created"), (1, "created"))
    assert advance(waiting) == {1: "pending", 2: "pending"}  # the later stage waits
    assert advance(jobs((0, "running"), (1, "created"))) == {}
    after_failure = jobs(
        (0, "failed"), (1, "created"), (1, "created", "on_failure"), (1, "created", "always")
    )
    assert advance(after_failure) == {2: "skipped", 3: "pending", 4: "pending"}
    after_success = jobs((0, "success"), (1, "created", "on_failure"), (2, "created"))
    assert advance(after_success) == {2: "skipped", 3: "pending"}


JUNIT = b"""<?xml version="1.0"?>
<testsuites>
  <testsuite name="outer">
    <testsuite name="inner">
      <testcase classname="a.B" name="ok" time="0.25"><system-out>printed</system-out></testcase>
      <testcase classname="a.B" name="bad" time="1.5"><failure message="short">long text</failure></testcase>
    </testsuite>
    <testcase classname="a.C" name="boom" time="x"><error message="only message"/></testcase>
    <testcase classname="a.C" name="later"><skipped/></testcase>
  </testsuite>
</testsuites>
"""


def test_junit_cases_statuses_outputs_and_report_totals() -> None:
    cases = parse_junit(JUNIT)
    assert [(c["name"], c["status"], c["system_output"]) for c in cases] == [
        ("ok", "success", "printed"),
        ("bad", "failed", "long text"),
        ("boom", "error", "only message"),
        ("later", "skipped", None),
    ]
    assert [c["execution_time"] for c in cases] == [0.25, 1.5, 0.0, 0.0]
    report = report_json([suite_json("unit", cases, [7]), suite_json("broken", [], [8], "bad xml")])
    assert (report["total_count"], report["total_time"], report["error_count"]) == (4, 1.75, 1)
    assert report["test_suites"][1] == {
        "name": "broken", "total_time": 0, "total_count": 0, "success_count": 0,
        "failed_count": 0, "skipped_count": 0, "error_count": 0, "suite_error": "bad xml",
        "build_ids": [8], "test_cases": [],
    }  # fmt: skip
    with pytest.raises(JunitError, match="JUnit XML parsing failed"):
        parse_junit(b"<testsuite><testcase>")
    with pytest.raises(JunitError, match="unexpected root element <html>"):
        parse_junit(b"<html/>")


def test_the_trace_stops_growing_at_its_limit() -> None:
    trace = Trace(limit=10)
    trace.write("12345")
    trace.write("67890abc")
    trace.write("more")
    assert trace.text() == "1234567890\nJob's log exceeded limit of 10 bytes.\n"


def test_the_demo_projects_ci_job_runs_its_unittest_suite(demo_sim: RunningSim) -> None:
    project = client(demo_sim, BOT_TOKEN).projects.get("demo/app")
    branch = project.branches.create({"branch": "crewline/1-try", "ref": "main"})
    wait_idle(demo_sim)
    pipeline = only_pipeline(project, branch.commit["id"])
    assert pipeline.status == "success"
    report = pipeline.test_report.get()
    assert (report.total_count, report.success_count) == (8, 8)
    assert report.test_suites[0]["name"] == "test"
