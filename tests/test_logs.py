"""`--log-format json` and `[observability] log_format`: real crewline subprocesses against the
seeded simulator write one JSON object per line, with the issue, role, run and worker of the
line, and never a token."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bot.demo_goals import GOALS
from bot.logs import JsonFormatter, Scrubber
from sim.core.app import RunningSim
from tests.support.cli import (
    TOKEN_ENV,
    WORKER,
    background,
    ends_cleanly,
    file_by_hand,
    run_cli,
    write_config,
)
from tests.test_cli import crewline

FIELDS = {"time", "level", "logger", "message"}


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every log line (the console's own lines are plain text and start otherwise)."""
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert entries, output
    for entry in entries:
        assert set(entry) >= FIELDS, entry
    return entries


def test_a_worker_logs_json_lines_with_the_issue_role_run_and_worker(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    config = write_config(tmp_path / "crewline.toml", demo_sim)
    run_cli(config, "labels", "sync")
    with background(config, "worker", "-v", "--log-format", "json", env=TOKEN_ENV) as worker:
        worker.wait_for_line(rf"crewline {WORKER}: working on")
        iid = file_by_hand(demo_sim, GOALS[0].title, GOALS[0].description)
        worker.wait_for_line(r'"message": "claimed: issue=')
        ends_cleanly(worker)
    entries = json_lines(worker.output)
    claimed = [e for e in entries if e["message"].startswith("claimed: ")]
    assert claimed[0]["issue"] == f"demo/app#{iid}"
    assert claimed[0]["role"] == "pm"
    assert claimed[0]["run"] and claimed[0]["run"] in claimed[0]["message"]
    assert claimed[0]["worker"] == WORKER
    assert {e["level"] for e in entries} >= {"DEBUG", "INFO"}
    assert TOKEN_ENV["CREWLINE_GITLAB_TOKEN"] not in worker.output


def test_the_setting_chooses_json_and_the_text_default_stays(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    config = write_config(tmp_path / "crewline.toml", demo_sim)
    plain = crewline("labels", "sync", "-v", "--config", str(config), env=TOKEN_ENV)
    assert plain.returncode == 0, plain.stderr
    assert not any(line.startswith("{") for line in plain.stderr.splitlines())
    with config.open("a", encoding="utf-8") as extra:
        extra.write('\n[observability]\nlog_format = "json"\n')
    result = crewline("labels", "sync", "-v", "--config", str(config), env=TOKEN_ENV)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stderr)


def test_tokens_are_scrubbed_from_every_line() -> None:
    own = "sim-bot-token-0123456789abcdef"
    formatter = JsonFormatter(Scrubber([own]), worker="w-1")
    record = logging.LogRecord(
        "forge.client", logging.WARNING, __file__, 1,
        "gitlab said no: issue=%s role=%s token %s and glpat-%s",
        ("g/p#7", "dev", own, "abcdefghij0123456789"), None,
    )  # fmt: skip
    entry = json.loads(formatter.format(record))
    assert own not in json.dumps(entry)
    assert "glpat-abcdefghij0123456789" not in entry["message"]
    assert entry["message"].count("[redacted") == 2
    assert (entry["issue"], entry["role"], entry["worker"]) == ("g/p#7", "dev", "w-1")
