"""Agents and validation commands run in the sandbox: an agent that tries to read crewline's
token (from crewline's /proc/<pid>/environ), a secret file, the database, another issue's
worktree and another issue's transcripts gets all of them unconfined, and none under bwrap.

Real parts throughout: a real crewline-like process that loaded its secrets, the real
``command`` adapter running a real script, real worktrees of the simulator's repository, a
real SQLite database, the real bubblewrap (.ci/run installs it when the machine lacks it)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import build_agents
from bot.config import ConfigError, CrewlineConfig
from bot.demo import VALIDATION
from bot.demo_goals import GOALS
from bot.doctor import check_sandbox
from forge.settings import ProjectSettings
from roles.agents.base import AgentTask, TaskKind
from roles.sandbox import (
    BwrapSandbox,
    NoSandbox,
    SandboxError,
    SandboxSettings,
    probe,
    select_sandbox,
)
from roles.validate import Check, ValidationReport, run_validation
from sim.core.app import RunningSim
from storage import Database
from tests.support.engine import configure, file_goal, reach, runtime_for
from tests.support.sandbox import (
    CREWLINE,
    FILE_SECRET,
    OTHER_RUN,
    OTHER_WORK,
    TOKEN,
    configured_bwrap,
    escape_attempt,
    running_with,
    scene,
)
from tests.support.workspace import AUTHOR, PROJECT


@pytest.fixture
def crewline(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, dict[str, object]]]:
    secret_file = tmp_path / "secrets" / "webhook_secret"
    secret_file.parent.mkdir()
    secret_file.write_text(FILE_SECRET, encoding="utf-8")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/"),
        "CREWLINE_GITLAB_TOKEN": TOKEN,
        "CREWLINE_WEBHOOK_SECRET_FILE": str(secret_file),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", CREWLINE],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    started = json.loads(process.stdout.readline())
    try:
        yield process, secret_file, started
    finally:
        process.stdin.close()
        process.wait(timeout=10)


async def test_an_agent_reads_crewlines_secrets_unconfined_and_nothing_under_bwrap(
    sim: RunningSim, tmp_path: Path, crewline: tuple[subprocess.Popen[str], Path, dict[str, object]]
) -> None:
    process, secret_file, started = crewline
    # crewline read both secrets and no longer carries them: what it starts inherits nothing...
    assert started["read"] == [TOKEN, FILE_SECRET]
    assert TOKEN not in str(started["child_env"]) and "CREWLINE_" not in str(started["child_env"])
    # ...but the kernel still shows the environment crewline was started with.
    environ = (await asyncio.to_thread(Path(f"/proc/{process.pid}/environ").read_bytes)).decode()
    assert TOKEN in environ
    async with scene(sim, tmp_path, process.pid, secret_file) as s:
        unconfined = await escape_attempt(s, NoSandbox())
        assert TOKEN in unconfined["environ"]
        assert unconfined["secret_file"] == FILE_SECRET
        assert unconfined["database"].startswith("SQLite format 3")
        assert unconfined["other_worktree"] == OTHER_WORK
        assert unconfined["other_run"] == OTHER_RUN

        confined = await escape_attempt(s, configured_bwrap(s))
        # Its own PID namespace: crewline's pid does not exist there.
        assert confined["environ"].startswith("DENIED FileNotFoundError"), confined
        # /dev/null is mounted over the files, on a nodev mount: it cannot even be opened.
        assert confined["secret_file"].startswith("DENIED PermissionError")
        assert confined["database"].startswith("DENIED PermissionError")
        assert confined["other_worktree"].startswith("DENIED FileNotFoundError")
        assert confined["other_run"].startswith("DENIED FileNotFoundError")
        assert not {TOKEN, FILE_SECRET, OTHER_WORK, OTHER_RUN} & set(confined.values())
        assert TOKEN not in json.dumps(confined)


async def test_validation_runs_the_projects_tests_and_git_in_the_worktree_under_bwrap(
    sim: RunningSim, tmp_path: Path, crewline: tuple[subprocess.Popen[str], Path, dict[str, object]]
) -> None:
    process, secret_file, _ = crewline
    async with scene(sim, tmp_path, process.pid, secret_file) as s:
        (s.mine.path / "test_ok.py").write_text(
            "import unittest\n\nclass T(unittest.TestCase):\n"
            "    def test_ok(self):\n        self.assertTrue(True)\n",
            encoding="utf-8",
        )
        checks = [
            Check("tests", "python3 -m unittest discover -q"),
            Check("git", "git status --porcelain | grep -q test_ok.py && git log -1 --format=%H"),
            Check("writes", "echo built > build.txt"),
            Check("pid namespace", f"test ! -e /proc/{process.pid}"),
            Check("other worktree", f"test ! -e {s.other.path}"),
        ]
        confined = await run_validation(s.mine.path, checks, sandbox=configured_bwrap(s))
        assert confined.go, confined.to_markdown()
        head = confined.results[1].output_tail.strip()
        assert head == s.mine.start_sha
        assert (s.mine.path / "build.txt").read_text() == "built\n"
        # The same checks unconfined: crewline and the other worktree are in plain sight.
        unconfined = await run_validation(s.mine.path, checks, sandbox=NoSandbox())
        assert [r.name for r in unconfined.failures] == ["pid namespace", "other worktree"]


async def test_git_in_the_sandbox_reads_the_shared_repository_but_cannot_write_it(
    sim: RunningSim, tmp_path: Path, crewline: tuple[subprocess.Popen[str], Path, dict[str, object]]
) -> None:
    process, secret_file, _ = crewline
    async with scene(sim, tmp_path, process.pid, secret_file) as s:
        commit = "git -c user.name=a -c user.email=a@b commit --allow-empty -q -m sneaky"
        report = await run_validation(
            s.mine.path, [Check("commit", commit)], sandbox=configured_bwrap(s)
        )
        assert not report.go
        assert "Read-only file system" in report.results[0].output_tail
        # crewline's own git (not sandboxed: it needs the mirror and, to push, the token)
        # commits what the agent wrote in the same worktree.
        (s.mine.path / "feature.txt").write_text("agent's work\n", encoding="utf-8")
        sha = await s.workspaces.commit_all(s.mine, "Add the feature", *AUTHOR)
        assert sha is not None and sha != s.mine.start_sha


async def test_a_timed_out_sandboxed_command_leaves_nothing_running(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10_000}.{uuid.uuid4().int % 1000:03d}"
    sandbox = BwrapSandbox(hidden=[])
    command = f"sleep 1{marker} & sleep 2{marker} & wait"
    report = await run_validation(
        tmp_path, [Check("hang", command)], sandbox=sandbox, timeout_seconds=1.0
    )
    assert report.results[0].timed_out
    await asyncio.sleep(0.5)
    assert await asyncio.to_thread(running_with, marker) == []


async def test_a_missing_agent_program_is_reported_as_such_under_bwrap(tmp_path: Path) -> None:
    config = CrewlineConfig.model_validate(
        {
            "gitlab": {"url": "https://gitlab.example.com"},
            "projects": [{"path": PROJECT}],
            "roles": {"agent": "ghost"},
            "agents": {"ghost": {"kind": "command", "command": "no-such-agent-cli"}},
        }
    )
    agents, _ = build_agents(config, BwrapSandbox())
    task = AgentTask(TaskKind.PLAN, "plan", tmp_path, tmp_path / "runs")
    result = await agents["pm"].run(task)
    assert not result.ok
    assert result.error is not None and "not found (is it installed and on PATH?)" in result.error


def test_bwrap_is_chosen_where_it_works_and_none_comes_with_a_warning() -> None:
    assert probe() is None  # bubblewrap works on this machine
    chosen = select_sandbox(SandboxSettings())
    assert chosen.sandbox.name == "bwrap" and chosen.warning is None
    broken = lambda: probe("no-such-bwrap")  # noqa: E731
    fallback = select_sandbox(SandboxSettings(), check=broken)
    assert fallback.sandbox.name == "none"
    assert fallback.warning is not None and "WITHOUT a sandbox" in fallback.warning
    assert "'no-such-bwrap' is not on PATH" in fallback.warning
    with pytest.raises(SandboxError, match='sandbox = "bwrap" is configured but'):
        select_sandbox(SandboxSettings(backend="bwrap"), check=broken)
    chosen_none = select_sandbox(SandboxSettings.model_validate("none"), check=broken)
    assert chosen_none.sandbox.name == "none" and chosen_none.warning is not None


def test_doctor_fails_when_agents_would_run_unconfined_without_being_told() -> None:
    broken = lambda: probe("no-such-bwrap")  # noqa: E731
    assert check_sandbox(SandboxSettings()).ok
    fallback = check_sandbox(SandboxSettings(), check=broken)
    assert not fallback.ok and "WITHOUT a sandbox" in fallback.detail
    explicit = check_sandbox(SandboxSettings(backend="bwrap"), check=broken)
    assert not explicit.ok and "is configured but" in explicit.detail
    accepted = check_sandbox(SandboxSettings(backend="none"), check=broken)
    assert accepted.ok and accepted.detail.startswith("WARNING")


async def test_the_engines_agents_and_validation_run_in_the_configured_sandbox(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    # Passes only where crewline (this test process) is out of sight: inside the sandbox.
    hidden_crewline = f"test ! -e /proc/{os.getpid()}"
    project = ProjectSettings(path=PROJECT, validation=[hidden_crewline, *VALIDATION])
    config = configure(
        demo_sim, tmp_path, projects=[project], sandbox=SandboxSettings(backend="bwrap")
    )
    async with runtime_for(demo_sim, config) as (runtime, _):
        assert runtime.sandbox_warning is None
        assert runtime.services.sandbox.name == "bwrap"
        goal = await file_goal(runtime, GOALS[0].title, GOALS[0].description)
        await reach(runtime, {goal.iid: "review-ready"})
        run = await runtime.storage.runs.latest(PROJECT, goal.iid, "dev")
        assert run is not None
        report = ValidationReport.from_json(
            (await runtime.storage.runs.steps(run.id))["validate-1"]
        )
        assert report.go and report.results[0].command == hidden_crewline
        transcripts = list((tmp_path / "runs").rglob("*.log"))
        assert transcripts and all(
            "# sandbox: bwrap" in path.read_text(encoding="utf-8") for path in transcripts
        )


async def test_start_fails_when_bwrap_is_configured_and_cannot_run(
    demo_sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no bwrap to be found
    config = configure(demo_sim, tmp_path, sandbox=SandboxSettings(backend="bwrap"))
    with pytest.raises(ConfigError) as error:
        async with runtime_for(demo_sim, config):
            pass
    assert error.value.source == "sandbox"
    assert "'bwrap' is not on PATH" in error.value.problems[0]


@pytest.mark.parametrize("cwd", ["worktree", "home"])
async def test_a_database_in_the_agents_home_can_be_neither_read_nor_joined_by_a_journal(
    tmp_path: Path, cwd: str
) -> None:
    # The container layout: HOME is crewline's data directory, the database sits in it; the
    # command runs in a worktree, or (a worst case) in that directory itself.
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "worktree").mkdir()
    db = await Database.open(home / "crewline.sqlite3")
    await db.close()
    journal = home / "crewline.sqlite3-journal"
    names = ["crewline.sqlite3", *(f"crewline.sqlite3{s}" for s in ("-wal", "-shm", "-journal"))]
    sandbox = BwrapSandbox(hidden=[home / name for name in names])
    checks = [
        Check("own files", f"echo remembered > {home}/.agentrc"),
        Check("read the database", f"head -c 15 {home}/crewline.sqlite3"),
        Check("plant a hot journal", f"echo crafted > {journal}"),
    ]
    env = {"HOME": str(home)}
    where = tmp_path / cwd
    confined = await run_validation(where, checks, env=env, sandbox=sandbox)
    assert [r.passed for r in confined.results] == [True, False, False]
    assert (home / ".agentrc").read_text() == "remembered\n"
    assert journal.read_bytes() == b""  # the placeholder bwrap mounted over: nothing planted
    unconfined = await run_validation(where, checks, env=env, sandbox=NoSandbox())
    assert unconfined.go
    assert "SQLite format 3" in unconfined.results[1].output_tail
    assert journal.read_text() == "crafted\n"


async def test_a_database_in_a_read_only_directory_is_hidden_and_launches_still_work(
    tmp_path: Path,
) -> None:
    # The development layout: the database under the checkout, which is mounted read-only
    # (crewline's code lives there); its journal does not exist and cannot be created.
    checkout = tmp_path / "checkout"
    (checkout / "var").mkdir(parents=True)
    (tmp_path / "worktree").mkdir()
    db = await Database.open(checkout / "var" / "crewline.sqlite3")
    await db.close()
    database = checkout / "var" / "crewline.sqlite3"
    journal = database.with_name("crewline.sqlite3-journal")
    sandbox = BwrapSandbox(readable=[checkout], hidden=[database, journal])
    checks = [
        Check("read the code", f"test -d {checkout}/var"),
        Check("read the database", f"head -c 15 {database}"),
        Check("plant a hot journal", f"echo crafted > {journal}"),
    ]
    report = await run_validation(tmp_path / "worktree", checks, sandbox=sandbox)
    assert [r.passed for r in report.results] == [True, False, False], report.to_markdown()
    assert not journal.exists()


async def test_a_runtime_without_a_sandbox_carries_the_warning_start_prints(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = configure(demo_sim, tmp_path, sandbox=SandboxSettings(backend="none"))
    async with runtime_for(demo_sim, config) as (runtime, _):
        assert runtime.services.sandbox.name == "none"
        assert runtime.sandbox_warning is not None
        assert "WITHOUT a sandbox" in runtime.sandbox_warning


def test_system_covered_is_within_a_system_path() -> None:
    """The part compare that replaced a ``within`` per system path answers as it did."""
    from roles.sandbox.bwrap import SYSTEM_PATHS, _system_covered
    from roles.sandbox.paths import within

    samples = [
        "/", "/usr", "/usr/lib/python3", "/usrx", "/usrx/bin", "/etc/ssl/certs", "/opt",
        "/home/u/.gitconfig", "/tmp/usr", "usr/lib", "/lib64/ld.so", "/libx", "/var/lib",
        "/run/crewline-git", "/sbin/x",
    ]  # fmt: skip
    for sample in map(Path, samples):
        expected = any(within(sample, Path(name)) for name in SYSTEM_PATHS)
        assert _system_covered(sample) is expected, sample
