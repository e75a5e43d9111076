"""The validation gate with real commands: pass, fail, timeouts that kill a whole process group,
huge and non-UTF-8 output, the environment, and the report's renderings."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from roles.validate import (
    TAIL_BYTES,
    Check,
    CheckResult,
    ValidationReport,
    printable,
    run_validation,
)


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def gone(pid: int, within: float = 2.0) -> bool:
    """Whether ``pid`` is dead now or dies within ``within`` seconds (a kill is asynchronous)."""
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


async def test_passing_and_failing_commands_make_a_no_go_report(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("present\n")
    report = await run_validation(
        tmp_path,
        [
            Check("cat", "cat data.txt", "project"),
            Check("fails", "echo to-stdout; echo to-stderr >&2; exit 3", "acceptance"),
            Check("missing", "no-such-command-here", "project"),
        ],
        timeout_seconds=10,
    )
    ok, failed, missing = report.results
    assert ok.passed and ok.exit_code == 0 and ok.output_tail == "present\n"
    assert (failed.exit_code, failed.timed_out, failed.source) == (3, False, "acceptance")
    assert failed.output_tail == "to-stdout\nto-stderr\n"
    assert missing.exit_code == 127 and "not found" in missing.output_tail
    assert not report.go and report.failures == [failed, missing]
    assert all(r.duration_seconds >= 0 for r in report.results)

    all_good = await run_validation(tmp_path, [Check("true", "true")], timeout_seconds=10)
    assert all_good.go and all_good.failures == []
    assert all_good.feedback_for_agent() == "All 1 validation commands passed."


async def test_a_timeout_kills_the_whole_group_including_a_grandchild(tmp_path: Path) -> None:
    script = "sh -c 'sleep 60 & echo $! > grandchild.pid; wait' & echo $! > child.pid; wait"
    started = time.monotonic()
    report = await run_validation(tmp_path, [Check("hang", script)], timeout_seconds=0.5)
    elapsed = time.monotonic() - started
    (result,) = report.results
    assert result.timed_out and not result.passed and result.exit_code == -9
    assert result.status().startswith("timed out after") and result.duration_seconds < 5
    assert elapsed < 5
    for name in ("child.pid", "grandchild.pid"):
        pid = int((tmp_path / name).read_text())
        assert await asyncio.to_thread(gone, pid), name


async def test_a_background_process_left_by_a_finished_command_is_killed(tmp_path: Path) -> None:
    started = time.monotonic()
    report = await run_validation(
        tmp_path,
        [Check("daemon", "sleep 60 & echo $! > bg.pid; echo done")],
        timeout_seconds=30,
    )
    assert time.monotonic() - started < 5  # did not wait for the straggler's pipe to close
    assert report.go and report.results[0].output_tail == "done\n"
    pid = int((tmp_path / "bg.pid").read_text())
    assert await asyncio.to_thread(gone, pid)


async def test_huge_output_keeps_only_the_tail(tmp_path: Path) -> None:
    command = "yes 'a line of noise' | head -c 3000000; printf 'LAST LINE\\n' >&2; exit 1"
    report = await run_validation(tmp_path, [Check("noisy", command)], timeout_seconds=30)
    (result,) = report.results
    assert result.output_tail.endswith("a line of noise\nLAST LINE\n")
    assert len(result.output_tail.encode()) <= TAIL_BYTES
    assert result.omitted_bytes == 3_000_000 + len("LAST LINE\n") - TAIL_BYTES
    assert "output shortened to its last 4 KB" in report.to_markdown()


async def test_non_utf8_and_terminal_codes_are_made_printable(tmp_path: Path) -> None:
    command = r"printf '\377\376 bad bytes, caf\303\251 \033[31mred\033[0m\r\nprogress\r100%%\n'"
    report = await run_validation(tmp_path, [Check("bytes", command)], timeout_seconds=10)
    tail = report.results[0].output_tail
    assert tail == "\ufffd\ufffd bad bytes, café red\nprogress\n100%\n"
    assert printable(b"\x00a\x07b\tc") == "ab\tc"


async def test_commands_see_an_allow_listed_environment_without_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREWLINE_GITLAB_TOKEN", "glpat-abcdefghijklmnopqrst")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-validation")
    report = await run_validation(
        tmp_path, [Check("env", "env; pwd")], env={"CI": "true"}, timeout_seconds=10
    )
    output = report.results[0].output_tail
    names = {line.split("=", 1)[0] for line in output.splitlines() if "=" in line}
    assert "glpat-" not in output and "not-for-validation" not in output
    assert {"PATH", "CI", "PYTHONDONTWRITEBYTECODE"} <= names
    assert names <= {"PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "CI", "PWD",
                     "SHLVL", "_", "PYTHONDONTWRITEBYTECODE", "OLDPWD"}  # fmt: skip
    assert output.rstrip().endswith(os.fspath(tmp_path))
    with pytest.raises(ValueError, match="CREWLINE_GITLAB_TOKEN may not be passed"):
        await run_validation(tmp_path, [], env={"CREWLINE_GITLAB_TOKEN": "x"})


async def test_bad_arguments_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a directory"):
        await run_validation(tmp_path / "missing", [Check("t", "true")])
    with pytest.raises(ValueError, match="timeout_seconds must be a positive number"):
        await run_validation(tmp_path, [Check("t", "true")], timeout_seconds=0)
    with pytest.raises(ValueError, match="empty command"):
        Check("t", "  ")
    with pytest.raises(ValueError, match="source must be"):
        Check("t", "true", "other")  # type: ignore[arg-type]


def result(command: str, exit_code: int, tail: str = "", **extra: object) -> CheckResult:
    fields: dict[str, object] = {
        "name": command,
        "command": command,
        "source": "project",
        "exit_code": exit_code,
        "duration_seconds": 1.25,
        "timed_out": False,
        "output_tail": tail,
    }
    fields.update(extra)
    return CheckResult(**fields)  # type: ignore[arg-type]


def test_markdown_has_a_table_and_fences_that_output_cannot_break() -> None:
    report = ValidationReport(
        (
            result("ruff check .", 0),
            result("grep -c x | wc -l", 1, "before\n````\nfake fence\n```\nafter\n"),
            result("pytest `echo -q`", -9, "slow\n", timed_out=True, source="acceptance"),
        )
    )
    text = report.to_markdown()
    assert text.startswith("**NO-GO**: 2 of 3 checks failed.")
    assert "| `ruff check .` | project | ✅ passed | 1.2 s |" in text
    assert "| `grep -c x \\| wc -l` | project | ❌ exit 1 | 1.2 s |" in text
    assert "| `` pytest `echo -q` `` | acceptance | ❌ timed out after 1.2 s (killed) |" in text
    # The tail holds a run of four backticks, so its fence uses five and encloses it whole.
    assert "`````text\nbefore\n````\nfake fence\n```\nafter\n`````" in text
    assert "```text\nslow\n```" in text
    assert ValidationReport(()).to_markdown() == "_No validation commands are configured._"


def test_feedback_names_each_failing_command_with_its_output() -> None:
    report = ValidationReport(
        (result("mypy .", 0), result("pytest -q", 1, "E   assert 1 == 2\n", source="acceptance"))
    )
    feedback = report.feedback_for_agent()
    assert feedback.startswith("Validation failed: 1 of 2 commands did not pass.")
    assert (
        "$ pytest -q\n(acceptance check: exit 1 after 1.2 s)\n```text\nE   assert 1 == 2\n```"
        in (feedback)
    )
    assert "mypy" not in feedback


async def test_a_report_survives_a_json_round_trip(tmp_path: Path) -> None:
    report = await run_validation(
        tmp_path,
        [Check("a", "echo é; exit 2", "acceptance"), Check("b", "true")],
        timeout_seconds=10,
    )
    saved = report.to_json()
    assert ValidationReport.from_json(saved) == report
    assert ValidationReport.from_json(json.dumps(saved)) == report
    with pytest.raises(ValueError, match="not a saved validation report"):
        ValidationReport.from_json({"version": 1, "results": [{"name": "x"}]})
    with pytest.raises(ValueError, match="version 1"):
        ValidationReport.from_json("[]")
