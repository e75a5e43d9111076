"""Any executable as an agent: used by the tests, the demo, and home-grown agents.

Invocation: ``command *args`` in the workspace. The prompt arrives on stdin, unless an
argument contains ``{prompt_file}``: then the prompt is written to a file beside the
transcript, every ``{prompt_file}`` is replaced by that file's path, and stdin is empty.

Environment: the allow-list (as for every agent) plus

- ``CREWLINE_TASK_KIND``: plan, implement, fix, review or diagnose;
- ``CREWLINE_TRANSCRIPT_DIR``: where this turn's transcript is written (scratch space too);
- ``CREWLINE_SESSION_ID``: only when resuming, the session id the agent reported earlier;
- ``CREWLINE_MODEL``: only when the agent's settings name a model.

Output: everything printed on stdout, trimmed. Exit status 0 means the agent finished.

Optional report: if the LAST non-empty stdout line is a JSON object whose keys are only
``crewline_usage`` and/or ``session_id``, it is taken as a report and removed from the output::

    {"crewline_usage": {"tokens_in": 1200, "tokens_out": 300, "cost_usd": 0.01},
     "session_id": "abc-123"}

(on one line). ``tokens_in``/``tokens_out`` are non-negative integers and ``cost_usd`` a
non-negative number, each defaulting to 0; ``session_id`` is a non-empty string that comes
back as ``CREWLINE_SESSION_ID`` when the task resumes. A report with wrong types makes the
turn fail with an error naming the field.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from roles.agents.base import AgentTask, Usage
from roles.agents.cli import CliAgent, Invocation, OutputError, Parsed, count, money
from roles.agents.process import ProcessResult

PROMPT_FILE = "{prompt_file}"
REPORT_KEYS = frozenset({"crewline_usage", "session_id"})


class CommandAgent(CliAgent):
    kind = "command"

    async def invocation(self, task: AgentTask, transcript: Path) -> Invocation:
        env = {
            "CREWLINE_TASK_KIND": task.kind.value,
            "CREWLINE_TRANSCRIPT_DIR": str(task.transcript_dir),
        }
        if task.session_id:
            env["CREWLINE_SESSION_ID"] = task.session_id
        if self.settings.model:
            env["CREWLINE_MODEL"] = self.settings.model
        args = self.settings.args
        if not any(PROMPT_FILE in arg for arg in args):
            return Invocation(
                argv=[self.executable, *args], stdin=task.prompt, env=env, parse=parse_command
            )
        prompt_file = transcript.with_suffix(".prompt.txt")
        await asyncio.to_thread(prompt_file.write_text, task.prompt, encoding="utf-8")
        argv = [self.executable, *(arg.replace(PROMPT_FILE, str(prompt_file)) for arg in args)]
        return Invocation(argv=argv, env=env, parse=parse_command)


def parse_command(process: ProcessResult) -> Parsed:
    output, report = split_report(process.stdout)
    if report is None:
        return Parsed(output=output.strip())
    session_id = report.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise OutputError(f"report line: session_id is {session_id!r}, expected a non-empty string")
    usage = None
    if "crewline_usage" in report:
        usage = _usage(report["crewline_usage"])
    return Parsed(output=output.strip(), session_id=session_id, usage=usage)


def split_report(stdout: str) -> tuple[str, dict[str, Any] | None]:
    """``stdout`` without its report line, and the report (None when there is none)."""
    lines = stdout.rstrip().splitlines()
    if not lines or not lines[-1].lstrip().startswith("{"):
        return stdout, None
    try:
        report = json.loads(lines[-1])
    except ValueError:
        return stdout, None
    if not isinstance(report, dict) or not report or not set(report) <= REPORT_KEYS:
        return stdout, None
    return "\n".join(lines[:-1]), report


def _usage(value: Any) -> Usage:
    if not isinstance(value, dict):
        raise OutputError(f"report line: crewline_usage is {value!r}, expected an object")
    where = "report line: crewline_usage"
    return Usage(
        tokens_in=count(value, "tokens_in", where),
        tokens_out=count(value, "tokens_out", where),
        cost_usd=money(value, "cost_usd", where),
    )
