"""The desk's work on single issues: what is stuck, retry and re-queue, agents' questions and
their answers. Framework-free; :class:`bot.desk.Desk` authorises and audits around it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from forge.gateway import StaleState
from forge.sink import seal
from forge.types import LabelEvent, Note
from roles import stuck
from roles.context import Services
from roles.gates.decide import FILER_KEY, filer_marker
from roles.ports import IssueTracker
from workflow import Outcome, StateKind, Workflow, next_state, read_state

QUESTION_KEY = re.compile(r"<!-- crewline:note key=question:(\S+) -->")
_ANSWER_KEY = re.compile(r"<!-- crewline:note key=answer:(\S+) -->")


def answer_key(question_note_id: int) -> str:
    return f"answer:{question_note_id}"


@dataclass(frozen=True)
class Question:
    note_id: int
    run: str  # the run that asked, e.g. pm-1 (its note is keyed question:<run>)
    text: str
    asked_at: str
    answer: Note | None  # crewline's note carrying the human's answer, once there is one


@dataclass(frozen=True)
class StuckItem:
    project: str
    iid: int
    title: str
    state: str
    reason: str
    action: str  # the button: "retry", "requeue", or "" (the hint says what a human does)
    url: str
    hint: str = ""

    @property
    def ref(self) -> str:
        return f"{self.project}#{self.iid}"


def questions_in(notes: list[Note]) -> list[Question]:
    """The agents' questions on an issue (notes keyed ``question:<run>``), oldest first."""
    # An answer is keyed by the question's note id (this desk) or by the asking run.
    answers = {
        match.group(1): note
        for note in notes
        if (match := _ANSWER_KEY.search(note.body)) is not None
    }
    found = []
    for note in notes:
        match = QUESTION_KEY.search(note.body)
        if match is None:
            continue
        text = QUESTION_KEY.sub("", note.body).strip()
        answer = answers.get(str(note.id)) or answers.get(match.group(1))
        found.append(Question(note.id, match.group(1), text, note.created_at, answer))
    return found


def came_from(wf: Workflow, events: list[LabelEvent], state: str) -> str | None:
    """The last ready or running state the issue was in before it last entered ``state``."""
    label = wf.state(state).label
    adds = [event for event in events if event.action == "add"]
    entered = max((i for i, event in enumerate(adds) if event.label == label), default=None)
    if entered is None:
        return None
    for event in reversed(adds[:entered]):
        earlier = wf.state_for_label(event.label)
        if earlier is not None and earlier.kind in (StateKind.READY, StateKind.RUNNING):
            return earlier.name
    return None


async def stuck_items(
    services: Services,
    projects: list[str],
    stuck_after: float,
    by_state: Mapping[str, float] | None = None,
) -> list[StuckItem]:
    """What ``roles/stuck.py`` calls stuck (blocked and failed items, anything in its state
    too long), in ``projects``, plus running work whose claim expired, with the button
    that helps: Retry for blocked and failed, Re-queue for running work."""
    wf = services.workflow
    found: list[StuckItem] = []
    for item in await stuck.stuck_items(services, stuck_after=stuck_after, by_state=by_state):
        if item.project not in projects:
            continue
        kind = wf.state(item.state).kind
        retryable = (item.state, Outcome.REQUEUED) in wf.transitions
        action = "retry" if retryable else "requeue" if kind is StateKind.RUNNING else ""
        found.append(
            StuckItem(
                item.project, item.iid, item.title, item.state, item.reason, action, item.url,
                item.action,
            )
        )  # fmt: skip
    listed = {item.ref for item in found}
    now = datetime.now(UTC)
    for project in projects:
        for role in wf.roles:
            running = wf.running_state(role)
            for issue in await services.gateway.list_issues(project, labels=[running.label]):
                if issue.ref in listed:
                    continue
                view = await services.claims.current(project, issue.iid, wf.ready_state(role).label)
                if view is not None and view.expired(now):
                    reason = (
                        f"the claim of worker {view.marker.worker} expired at "
                        f"{view.marker.expires:%Y-%m-%d %H:%M} UTC"
                    )
                    found.append(
                        StuckItem(
                            project, issue.iid, issue.title, running.name, reason, "requeue",
                            issue.web_url, "re-queue it now, or let the janitor do it",
                        )
                    )  # fmt: skip
    return found


async def retry(services: Services, project: str, iid: int, who: str, via: str) -> tuple[bool, str]:
    """Move a blocked or failed issue back to the stage it came from."""
    wf, gateway = services.workflow, services.gateway
    issue = await gateway.get_issue(project, iid)
    state = read_state(wf, issue.labels).state
    if state is None or (state.name, Outcome.REQUEUED) not in wf.transitions:
        where = state.name if state else "no workflow state"
        return False, f"{issue.ref} is at {where}: only a blocked or failed issue can be retried"
    events = await gateway.label_events(project, iid)
    origin = came_from(wf, events, state.name)
    if origin is None:
        return False, (
            f"{issue.ref}: its label history does not show which stage it came from; "
            "set the ready label of that stage by hand in GitLab"
        )
    target = next_state(wf, state.name, Outcome.REQUEUED, came_from=origin)
    try:
        await gateway.transition(project, iid, target, expect={state.name})
    except StaleState as stale:
        return False, f"the issue moved meanwhile: {stale}"
    entered = events[-1].id if events else 0
    await gateway.upsert_note(
        project, iid, f"retry:{entered}", f"Re-queued to {target} by {who} via {via}."
    )
    return True, f"{issue.ref} re-queued from {state.name} to {target}"


async def requeue(
    services: Services, project: str, iid: int, who: str, via: str
) -> tuple[bool, str]:
    """Give a running issue whose worker stopped renewing its claim back to its ready state."""
    wf, gateway = services.workflow, services.gateway
    issue = await gateway.get_issue(project, iid)
    state = read_state(wf, issue.labels).state
    if state is None or state.kind is not StateKind.RUNNING or state.role is None:
        where = state.name if state else "no workflow state"
        return False, f"{issue.ref} is at {where}: only running work can be re-queued"
    reason = f"Re-queued by {who} via {via}: its worker stopped renewing the claim."
    if await services.claims.expire(issue, state.role, reason=reason):
        ready = wf.ready_state(state.role).name
        return True, f"{issue.ref} re-queued from {state.name} to {ready}"
    view = await services.claims.current(project, iid, wf.ready_state(state.role).label)
    if view is not None:
        return False, (
            f"{issue.ref}: worker {view.marker.worker} holds a live claim until "
            f"{view.marker.expires:%H:%M} UTC; it is re-queued only once that expires"
        )
    return False, f"{issue.ref} was claimed moments ago; try again after the claim TTL"


async def answer(
    services: Services,
    project: str,
    iid: int,
    question_note_id: int,
    text: str,
    gitlab_user: str,
    via: str,
) -> tuple[bool, str]:
    """Post the answer to one question; once every question has one, resume the stage."""
    gateway = services.gateway
    notes = await gateway.notes(project, iid)
    asked = {question.note_id: question for question in questions_in(notes)}
    question = asked.get(question_note_id)
    if question is None:
        return False, f"{project}#{iid} has no question {question_note_id}"
    changed = False
    if question.answer is not None:
        first = question.answer.body.splitlines()[0].rstrip(":")
        message = f"already answered at {question.answer.created_at}: {first}"
    else:
        await gateway.upsert_note(
            project,
            iid,
            answer_key(question_note_id),
            f"Answer from @{gitlab_user} via {via}:\n\n{text.strip()}",
        )
        changed, message = True, f"answer posted on {project}#{iid}"
        notes = await gateway.notes(project, iid)
    waiting = [q for q in questions_in(notes) if q.answer is None]
    if waiting:
        return changed, f"{message}; {len(waiting)} more question(s) wait"
    resumed = await _resume(services, project, iid)
    return changed or resumed is not None, f"{message}; {resumed or 'nothing to resume'}"


async def _resume(services: Services, project: str, iid: int) -> str | None:
    wf, gateway = services.workflow, services.gateway
    issue = await gateway.get_issue(project, iid)
    state = read_state(wf, issue.labels).state
    if state is None or state.kind is not StateKind.WAITING:
        return None
    origin = came_from(wf, await gateway.label_events(project, iid), state.name)
    if origin is None:
        return None
    target = next_state(wf, state.name, Outcome.ANSWERED, came_from=origin)
    try:
        await gateway.transition(project, iid, target, expect={state.name})
    except StaleState:
        return None
    return f"resumed at {target}"


async def record_filer(gateway: IssueTracker, project: str, iid: int, filer: str, via: str) -> None:
    """Say who filed the goal in a keyed note of crewline's own: unlike the description, no
    one else can edit it, so the second-person rule holds after a person edits the goal."""
    body = f"Filed by @{filer} via {via}.\n\n{seal(filer_marker(filer))}"
    await gateway.upsert_note(project, iid, FILER_KEY, body)


def goal_body(description: str, criteria: str, filer: str, via: str) -> str:
    """The issue text of a goal filed through a surface, naming (and marking) its filer."""
    parts = [description.strip() or "(no description)"]
    if criteria.strip():
        parts.append(f"### Acceptance criteria\n\n{criteria.strip()}")
    parts.append(f"---\nFiled by @{filer} via {via}.\n\n{seal(filer_marker(filer))}")
    return "\n\n".join(parts)


def person_of(who: str) -> str:
    """``discord:1 gitlab:alice`` -> ``@alice``."""
    for part in who.split():
        if part.startswith("gitlab:"):
            return "@" + part.removeprefix("gitlab:")
    return who
