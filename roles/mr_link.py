"""The issue's merge request and what came back from it, as every host reads them.

The developer's handoff note on the issue carries a hidden marker naming the MR, so the
review and QA roles (on any host) find it without guessing branch names; feedback that sent
the work back (a failed pipeline, review rounds, a human's requested changes) is what the
next developer attempt reads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from forge.types import MergeRequest, Note
from roles.context import RunContext
from roles.ports import IssueTracker

_MR = re.compile(r"<!-- crewline:mr iid=(\d+) branch=(\S+) -->")
_QA_PASSED = re.compile(r"<!-- crewline:qa-passed sha=([0-9a-f]{40}) -->")
_KEY = re.compile(r"<!-- crewline:note key=(\S+) -->")
_SENT_BACK = re.compile(r"^((qa|review)-\d+:outcome|decision:merge:\w+)$")
_HANDOFF = re.compile(r"^dev-\d+:handoff$")


def mr_marker(iid: int, branch: str) -> str:
    return f"<!-- crewline:mr iid={iid} branch={branch} -->"


def mr_reference(notes: list[Note]) -> tuple[int, str] | None:
    """(MR iid, source branch) from the newest handoff note."""
    for note in reversed(notes):
        match = _MR.search(note.body)
        if match:
            return int(match.group(1)), match.group(2)
    return None


def qa_passed_marker(sha: str) -> str:
    return f"<!-- crewline:qa-passed sha={sha} -->"


def qa_passed_head(notes: list[Note]) -> str | None:
    """The head sha QA last passed, from the newest QA outcome note; None if QA never passed
    (or the QA role is off)."""
    for note in reversed(notes):
        match = _QA_PASSED.search(note.body)
        if match:
            return match.group(1)
    return None


def moved_since_qa(notes: list[Note], mr: MergeRequest) -> str | None:
    """Why ``mr`` must go back to QA: its head is not the one QA passed (someone pushed
    after the pipeline went green). None when the head is the QA-passed one or QA never ran."""
    passed = qa_passed_head(notes)
    if passed is None or mr.sha == passed:
        return None
    return (
        f"!{mr.iid} moved to `{mr.sha[:10]}` after QA passed `{passed[:10]}`: the new head "
        "needs its own pipeline, back to QA."
    )


async def issue_mr(gateway: IssueTracker, project: str, iid: int) -> MergeRequest | None:
    return (await issue_mr_and_notes(gateway, project, iid))[0]


async def issue_mr_and_notes(
    gateway: IssueTracker, project: str, iid: int
) -> tuple[MergeRequest | None, list[Note]]:
    """The issue's MR (None before the developer opened one) and the notes that name it,
    for callers that read the notes too (whether QA passed this head)."""
    notes = await gateway.notes(project, iid)
    return await named_mr(gateway, project, notes), notes


async def named_mr(
    gateway: IssueTracker, project: str, notes: Sequence[Note]
) -> MergeRequest | None:
    """The MR the newest handoff note in ``notes`` names (one read of it); None before the
    developer opened one."""
    reference = mr_reference(list(notes))
    return None if reference is None else await gateway.merges.get_mr(project, reference[0])


def note_key(note: Note) -> str | None:
    match = _KEY.search(note.body)
    return match.group(1) if match else None


def work_feedback(notes: list[Note]) -> str:
    """What sent the work back since the developer's last handoff, oldest first."""
    since = [note for note in notes]
    for n in range(len(notes) - 1, -1, -1):
        key = note_key(notes[n])
        if key and _HANDOFF.match(key):
            since = notes[n + 1 :]
            break
    parts = [
        _KEY.sub("", note.body).strip()
        for note in since
        if (key := note_key(note)) is not None
        and _SENT_BACK.match(key)
        and not _QA_PASSED.search(note.body)  # a pass is not feedback
    ]
    return "\n\n---\n\n".join(parts)


async def latest_work_feedback(ctx: RunContext) -> str:
    return work_feedback(await ctx.gateway.notes(ctx.issue.project, ctx.issue.iid))
