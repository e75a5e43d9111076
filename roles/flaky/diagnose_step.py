"""The diagnostician's turn on a reproduced flaky test, and the hand-off to the fixer.

The agent gets the failing job's log, the test's source at the failing commit and the test
id, all fenced as data, in a scratch directory of its own (it changes nothing), and answers in
the strict form of :mod:`roles.flaky.diagnosis`. A malformed answer is given back once with
what to correct; a second one blocks the issue. A clear diagnosis goes to the fixer: the
diagnosis is added to the issue's description (which the PM plans from) and the issue enters
the ordinary workflow at its entry state, so the plan gate stays human.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from forge.types import Issue
from roles.agents.base import AgentTask, TaskKind
from roles.context import Services
from roles.flaky.diagnosis import DiagnosisError, parse, prompt, record
from roles.flaky.filing import Rerun
from roles.triage import excerpt
from workflow import Workflow, label_change

log = logging.getLogger(__name__)

LOG_LINES = 120


def source_paths(test: str) -> list[str]:
    """Where ``pkg.module.Class.test`` may live: the longest module path first."""
    parts = test.split(".")[:-1]
    return ["/".join(parts[:n]) + ".py" for n in range(len(parts), 0, -1)]


async def diagnose(
    services: Services, flaky: Workflow, issue: Issue, rerun: Rerun, agent_role: str
) -> str:
    """Ask the agent, record its verdict; the flaky state the issue went to."""
    gateway = services.gateway
    pipeline = await gateway.merges.pipeline(issue.project, rerun.pipeline)
    sha = pipeline.sha
    failed = [
        job.id
        for job in await gateway.ci.jobs(issue.project, rerun.pipeline)
        if job.name == rerun.job and job.status == "failed"
    ]
    logs = ""
    if failed:
        logs = excerpt(await gateway.merges.job_trace(issue.project, max(failed)), LOG_LINES)
    source = ""
    for path in source_paths(rerun.test):
        found = await gateway.ci.file_at(issue.project, path, sha)
        if found is not None:
            source = f"# {path} at {sha[:12]}\n{found}"
            break
    question = prompt(rerun.test, logs, source, "")
    scratch = services.runs_dir / "flaky" / f"{issue.project.replace('/', '_')}-{issue.iid}"
    answer = await _ask(services, agent_role, question, scratch, issue)
    try:
        found_cause = parse(answer)
    except DiagnosisError as error:
        retry = f"{question}\n\nYour answer was not in the required form: {error}. Answer again."
        try:
            found_cause = parse(await _ask(services, agent_role, retry, scratch, issue))
        except DiagnosisError as again:
            await gateway.post_note(
                issue.project, issue.iid, f"The diagnosis could not be read twice: {again}."
            )
            return await _block(services, flaky, issue)
    wf = services.workflow
    target = await record(gateway, flaky, issue, found_cause, fixer_label=wf.state(wf.entry).label)
    log.info("flaky diagnostician %s: %s -> %s", issue.ref, found_cause.cause, target)
    return target


async def _ask(services: Services, role: str, text: str, scratch: Path, issue: Issue) -> str:
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    agent = services.agent_for(role)
    result = await agent.run(
        AgentTask(
            kind=TaskKind.DIAGNOSE,
            prompt=text,
            workspace=scratch,
            transcript_dir=scratch,
            timeout_seconds=services.agent_timeout(role),
            label=f"{issue.ref} flaky diagnose",
        )
    )
    return result.output if result.ok else ""


async def _block(services: Services, flaky: Workflow, issue: Issue) -> str:
    fresh = await services.gateway.get_issue(issue.project, issue.iid)
    change = label_change(flaky, fresh.labels, "blocked")
    await services.gateway.update_issue(
        issue.project, issue.iid, add_labels=change.add, remove_labels=change.remove
    )
    return "blocked"
