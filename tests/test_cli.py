"""The ``crewline`` command, run as a real subprocess: help, doctor, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.core.app import RunningSim
from tests.support.forge import make_project

CONFIG = """
[gitlab]
url = "{url}"
max_retries = 0

[[projects]]
path = "group/app"

[storage]
path = "state/crewline.sqlite3"

[agents.demo]
kind = "demo"

[agents.tool]
kind = "command"
command = "{command}"
"""


def crewline(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=60,
        check=False,
    )


CLOSED = "http://127.0.0.1:9"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "crewline.toml"
    # A closed loopback port: the GitLab checks fail fast and nothing leaves the machine.
    path.write_text(CONFIG.format(command=sys.executable, url=CLOSED), encoding="utf-8")
    return path


SECRETS = {
    "CREWLINE_GITLAB_TOKEN": "glpat-abcdefghijklmnopqrst",
    "CREWLINE_WEBHOOK_SECRET": "s3cret-hook",
}


def test_help_lists_the_commands() -> None:
    result = crewline("--help")
    assert result.returncode == 0
    for command in ("doctor", "audit", "sim"):
        assert command in result.stdout
    # Gates are not Discord's alone: the help names every place a human decides them.
    said = " ".join(result.stdout.split())
    assert "from Discord" not in said
    for where in ("GitLab (a thumbs-up on the plan note, Approve on the merge request)",
                  "in Discord", "`crewline approve`"):  # fmt: skip
        assert where in said


def test_no_command_is_a_usage_error() -> None:
    assert crewline().returncode == 2


def test_doctor_all_ok(config_file: Path, sim: RunningSim) -> None:
    make_project(sim, "group/app")
    text = CONFIG.format(command=sys.executable, url=sim.base_url)
    config_file.write_text(text + '\n[roles]\nagent = "demo"\n', encoding="utf-8")
    env = {**SECRETS, "CREWLINE_GITLAB_TOKEN": sim.config.bot_token}
    synced = crewline("labels", "sync", "--config", str(config_file), env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    result = crewline("doctor", "--config", str(config_file), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("OK") for line in lines), lines
    names = [line.split(":")[0][5:] for line in lines]
    assert names == [
        "configuration",
        "git",
        "CREWLINE_GITLAB_TOKEN",
        "CREWLINE_WEBHOOK_SECRET",
        "GitLab token",
        "GitLab access group/app",
        "GitLab labels group/app",
        "webhook",
        "database",
        "agent demo",
        "agent tool",
        "sandbox",  # bubblewrap works here (.ci/run installs it)
        "guard",
    ]
    # A checkout runs the guard from its sources (the editable install refuses to compile).
    assert "OK   guard: pure Python; a wheel built with CREWLINE_COMPILE=1" in result.stdout
    assert (config_file.parent / "state" / "crewline.sqlite3").exists()
    assert sim.config.bot_token not in result.stdout
    assert "OK   GitLab token: valid for @crewline-bot, scopes api" in result.stdout


def test_doctor_reports_each_failure_and_what_to_do(config_file: Path) -> None:
    config_file.write_text(
        CONFIG.format(command="no-such-agent-binary", url=CLOSED), encoding="utf-8"
    )
    result = crewline(
        "doctor", "--config", str(config_file), env={"CREWLINE_WEBHOOK_SECRET": "x" * 12}
    )
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL CREWLINE_GITLAB_TOKEN: not set: export CREWLINE_GITLAB_TOKEN" in out
    assert "FAIL agent tool: 'no-such-agent-binary' is not on PATH" in out
    assert "OK   database" in out


def test_doctor_reports_an_unwritable_database(config_file: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the database directory should be", encoding="utf-8")
    result = crewline("doctor", "--config", str(config_file), env=SECRETS)
    assert result.returncode == 1
    assert "FAIL database:" in result.stdout


def doctor_with_schedule(config_file: Path, line: str) -> subprocess.CompletedProcess[str]:
    """`crewline doctor` on the test config with ``line`` under ``[schedule]``."""
    config_file.write_text(
        CONFIG.format(command="x", url=CLOSED) + f"\n[schedule]\n{line}\n", encoding="utf-8"
    )
    return crewline("doctor", "--config", str(config_file), env=SECRETS)


def test_doctor_with_a_bad_config_fails_and_names_the_key(config_file: Path) -> None:
    result = doctor_with_schedule(config_file, "poll_seconds = 'often'")
    assert result.returncode == 1
    assert "FAIL configuration" in result.stdout
    assert "schedule.poll_seconds = 'often'" in result.stdout


def test_a_crontab_that_is_not_one_names_the_key(config_file: Path) -> None:
    result = doctor_with_schedule(config_file, "flaky_cron = 'hourly'")
    assert result.returncode == 1
    assert "schedule.flaky_cron = 'hourly': a crontab of five fields" in result.stdout


def test_config_before_the_command_counts_too(config_file: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no crewline.toml here: only --config can find it
    result = crewline("--config", str(config_file), "doctor", env=SECRETS, cwd=elsewhere)
    assert result.stdout.startswith(f"OK   configuration: {config_file}")
    assert_only_gitlab_unreachable(result)


def test_config_from_environment_variable(config_file: Path) -> None:
    result = crewline("doctor", env={**SECRETS, "CREWLINE_CONFIG": str(config_file)})
    assert result.stdout.startswith(f"OK   configuration: {config_file}")
    assert_only_gitlab_unreachable(result)


def assert_only_gitlab_unreachable(result: subprocess.CompletedProcess[str]) -> None:
    """Everything passed but the GitLab check (the config points at a closed port)."""
    failing = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert result.returncode == 1
    assert failing == [
        "FAIL GitLab token: http://127.0.0.1:9 did not answer /user "
        + failing[0].split("/user ", 1)[1]
    ], result.stdout
    assert "check gitlab.url and that this host can reach it" in failing[0]


def test_audit_verify_with_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    result = crewline("audit", "verify", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert "configuration error" in result.stderr
