"""The desk's work on single issues: what is stuck, retry and re-queue, agents' questions and
their answers. Framework-free; :class:`bot.desk.Desk` authorises and audits around it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from forge.gateway import StaleState
from forge.types import Issue, LabelEvent, Note
from roles.context import Services
from workflow import Outcome, StateKind, Workflow, next_state, read_state

QUESTION_KEY = re.compile(r"<!-- crewline:note key=question:(\d+) -->")
_ANSWER_KEY = re.compile(r"<!-- crewline:note key=answer:(\d+) -->")


def answer_key(question_note_id: int) -> str:
    return f"answer:{question_note_id}"


@dataclass(frozen=True)
class Question:
    note_id: int
    number: int
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
    action: str  # "retry", "requeue", "answer", or "" when only a human in GitLab can help
    url: str

    @property
    def ref(self) -> str:
        return f"{self.project}#{self.iid}"


def questions_in(notes: list[Note]) -> list[Question]:
    """The agents' questions on an issue (notes keyed ``question:<n>``), oldest first."""
    answers = {
        int(match.group(1)): note
        for note in notes
        if (match := _ANSWER_KEY.search(note.body)) is not None
    }
    found = []
    for note in notes:
        match = QUESTION_KEY.search(note.body)
        if match is None:
            continue
        text = QUESTION_KEY.sub("", note.body).strip()
        found.append(
            Question(note.id, int(match.group(1)), text, note.created_at, answers.get(note.id))
        )
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


def _since(events: list[LabelEvent], issue: Issue) -> str:
    """When the issue last changed workflow state (its last label event), else its update."""
    return events[-1].created_at if events else issue.updated_at


def _age(since: str, now: datetime) -> timedelta:
    try:
        return now - datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return timedelta(0)


def _hours(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f} days"


async def stuck_items(
    services: Services, projects: list[str], stuck_after: float, now: datetime | None = None
) -> list[StuckItem]:
    """Blocked and failed items, unanswered questions, expired claims, and work with no
    transition for ``stuck_after`` seconds."""
    wf, gateway = services.workflow, services.gateway
    now = now or datetime.now(UTC)
    found: list[StuckItem] = []
    for project in projects:
        for state in wf:
            retryable = (state.name, Outcome.REQUEUED) in wf.transitions
            if state.kind is StateKind.TERMINAL and not retryable:
                continue  # done: nothing is stuck there
            for issue in await gateway.list_issues(project, labels=[state.label]):
                events = await gateway.label_events(project, issue.iid)
                age = _age(_since(events, issue), now)
                item = await _stuck(services, issue, state.name, age, stuck_after)
                if item is not None:
                    found.append(item)
    return found


async def _stuck(
    services: Services, issue: Issue, state_name: str, age: timedelta, stuck_after: float
) -> StuckItem | None:
    wf = services.workflow
    state = wf.state(state_name)

    def item(reason: str, action: str) -> StuckItem:
        return StuckItem(
            issue.project, issue.iid, issue.title, state.name, reason, action, issue.web_url
        )

    if state.kind is StateKind.TERMINAL:
        return item(f"{state.name} for {_hours(age)}", "retry")
    if state.kind is StateKind.WAITING:
        return item(f"waiting for an answer for {_hours(age)}", "answer")
    if state.kind is StateKind.RUNNING and state.role is not None:
        view = await services.claims.current(
            issue.project, issue.iid, wf.ready_state(state.role).label
        )
        if view is not None and view.expired(datetime.now(UTC)):
            return item(
                f"the claim of worker {view.marker.worker} expired at "
                f"{view.marker.expires:%Y-%m-%d %H:%M} UTC",
                "requeue",
            )
    if age.total_seconds() >= stuck_after:
        action = "requeue" if state.kind is StateKind.RUNNING else ""
        return item(f"no transition for {_hours(age)}", action)
    return None


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
