"""What a role run works with: its services, its issue, and checkpointed steps.

A run is (issue, stage, attempt). Each named step stores its result in SQLite when it
finishes; a run started again after a crash gets the stored result instead of doing the
step twice. Side effects inside a step are find-or-create by a deterministic key, so a crash
between "do" and "record" is harmless too (SPEC §4).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from forge.claims import Claim
from forge.gateway import note_marker
from forge.settings import ProjectSettings
from forge.sink import seal
from forge.types import Issue, Note
from roles.agents.unmarked import Unmarked
from roles.fleet_state import FleetState
from roles.ports import (
    Agent,
    Desk,
    IssueClaims,
    IssueTracker,
    MergeRequests,
    Notifier,
    Sandbox,
)
from roles.sandbox import NoSandbox
from roles.settings import RolesSettings
from roles.workspace.workspaces import Workspaces
from storage import Lease, Run, Storage
from workflow import Workflow

log = logging.getLogger(__name__)

T = TypeVar("T")
StepHook = Callable[[str], Awaitable[None]]
HostClaim = Claim[Lease]  # a claim held with this host's SQLite lease


class IssueMemo(Generic[T]):
    """Answers about an issue that hold until the issue changes. GitLab moves an issue's
    ``updated_at`` on every change to its labels, description and notes, and a link adds a
    system note to both issues, so an unchanged ``updated_at`` means an unchanged answer."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, str], tuple[str, T]] = {}

    async def get(self, issue: Issue, about: str, compute: Callable[[], Awaitable[T]]) -> T:
        key = (issue.project, issue.iid, about)
        known = self._known.get(key)
        if known is not None and issue.updated_at and known[0] == issue.updated_at:
            return known[1]
        value = await compute()
        self._known[key] = (issue.updated_at, value)
        return value


@dataclass
class Services:
    """Everything roles use, built once per process by the composition root: GitLab, the
    agents, the sandbox and the humans' surfaces as the ports of ``roles/ports.py``."""

    gateway: IssueTracker
    storage: Storage
    claims: IssueClaims[Lease]
    workflow: Workflow
    projects: Mapping[str, ProjectSettings]
    roles: RolesSettings
    agents: Mapping[str, Agent]  # by role name
    workspaces: Workspaces
    notifier: Notifier
    desk: Desk
    worker: str
    runs_dir: Path  # transcripts and scratch directories live under it
    agent_timeouts: Mapping[str, float] = field(default_factory=dict)  # by role name
    # The merge identity (a separate token) that merges after a human's approval; None:
    # humans merge in GitLab.
    merger: MergeRequests | None = None
    # Where validation commands run (agents got theirs when they were built); the composition
    # root passes the configured one.
    sandbox: Sandbox = field(default_factory=NoSandbox)
    # Fault injection for crash tests: awaited after every recorded step.
    after_step: StepHook | None = None
    # When an issue entered its state, and what it depends on: asked on every pass for every
    # waiting issue, and the same until the issue changes.
    entered: IssueMemo[str] = field(default_factory=lambda: IssueMemo[str]())
    dependencies: IssueMemo[frozenset[int]] = field(
        default_factory=lambda: IssueMemo[frozenset[int]]()
    )
    # Whether an issue waiting at a gate had a recorded decision left to complete (janitor).
    gate_records: IssueMemo[bool] = field(default_factory=lambda: IssueMemo[bool]())
    # An issue's notes, for the janitor's look at issues waiting for their MR.
    issue_notes: IssueMemo[tuple[Note, ...]] = field(
        default_factory=lambda: IssueMemo[tuple[Note, ...]]()
    )

    async def notes_of(self, issue: Issue) -> tuple[Note, ...]:
        """The notes of ``issue`` as listed (its ``updated_at`` included), read again only
        once it changed: a new note changes the issue. For looks at waiting issues (the
        janitor, the gates in GitLab), never for a run's own reads. An award on a note and
        an MR's state do not change the issue: callers read those every time."""

        async def read() -> tuple[Note, ...]:
            return tuple(await self.gateway.notes(issue.project, issue.iid))

        return await self.issue_notes.get(issue, "notes", read)

    # The fleet's shared state (pause, spend, learnings) read from GitLab; built on first use.
    fleet_state: FleetState | None = None

    @property
    def fleet(self) -> FleetState:
        if self.fleet_state is None:
            self.fleet_state = FleetState(self.gateway, self.storage, self.projects, self.worker)
        return self.fleet_state

    def agent_timeout(self, role: str) -> float:
        return self.agent_timeouts.get(role, 1800.0)

    def agent_for(self, role: str) -> Agent:
        try:
            # The one way roles reach an agent: its answers lose crewline's markers here.
            return Unmarked(self.agents[role])
        except KeyError:
            raise LookupError(f"no agent configured for the {role} role") from None


@dataclass
class RunContext:
    services: Services
    issue: Issue
    role: str
    attempt: int
    run: Run
    claim: HostClaim
    project: ProjectSettings
    done: dict[str, Any] = field(default_factory=dict)  # steps finished before a restart
    round_attempt: int = 1  # crash attempts of this stage in this round (roles/attempts.py)
    # A run started now, not resumed: no note carrying its keys can exist, since its key
    # (role and attempt) is new and only the claim's holder writes under it.
    fresh: bool = False
    # The keyed notes this run posted or found, by (noteable, iid, key): asked again, they
    # are answered from here instead of listing the notes.
    posted: dict[tuple[str, int, str], Note] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The run's stable name: the same on a restart and on another host."""
        return f"{self.role}-{self.attempt}"

    @property
    def run_dir(self) -> Path:
        slug = self.issue.project.replace("/", "_")
        path = self.services.runs_dir / slug / str(self.issue.iid) / self.key
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def gateway(self) -> IssueTracker:
        return self.services.gateway

    async def issue_at_start(self) -> Issue:
        """The issue as the run starts: GitLab's answer to the claim's own move when the
        run is fresh (as new as a read a moment later would be), else one read."""
        if self.fresh and self.claim.moved is not None:
            return self.claim.moved
        return await self.gateway.get_issue(self.issue.project, self.issue.iid)

    async def notes_at_start(self) -> list[Note]:
        """The issue's notes as the run starts: the ones its claim read just before when
        the run is fresh and its claim was won by reading them (decision 0028: notes read
        once), else one read. For what was there before the run, not what it wrote."""
        if self.fresh and self.claim.notes and not self.claim.carried:
            return list(self.claim.notes)
        return await self.gateway.notes(self.issue.project, self.issue.iid)

    async def hold(self) -> None:
        """Raise ClaimLost unless this run still holds its claim; the engine awaits it
        before every write others can see (GitLab writes and pushes, see forge.calls)."""
        await self.services.claims.check(self.claim)

    async def step(self, name: str, action: Callable[[], Awaitable[T]]) -> T:
        """Run ``action`` once per run: a step recorded before a crash returns its result."""
        if name in self.done:
            return self.done[name]  # type: ignore[no-any-return]
        result = await action()
        recorded = await self.services.storage.runs.checkpoint(self.run.id, name, result)
        self.done[name] = recorded
        log.debug("step done: issue=%s run=%s step=%s", self.issue.ref, self.key, name)
        if self.services.after_step is not None:
            await self.services.after_step(name)
        return recorded  # type: ignore[no-any-return]

    async def note(
        self,
        name: str,
        body: str,
        *,
        on: Literal["issue", "mr"] = "issue",
        iid: int | None = None,
        quoted: bool = False,
    ) -> Note:
        """Post a note once: keyed by run and name, found before it is created.

        A fresh run posts without looking first (nothing of it can exist; a lost answer is
        still found by the key before any retry, docs/decisions/0015), and remembers what it
        posted; a resumed run looks for the key first (it may have posted before the crash).

        ``quoted``: the body quotes material crewline did not write itself (CI logs, test
        output, goal text): guard findings are redacted instead of refusing the note."""
        target = iid or self.issue.iid
        key = f"{self.key}:{name}"
        known = self.posted.get((on, target, key))
        if known is not None:
            return known
        project = self.issue.project
        if self.fresh:
            body = f"{body}\n\n{seal(note_marker(key))}"
            note = await self.gateway.post_note(project, target, body, on=on, quoted=quoted)
        else:
            note = await self.gateway.upsert_note(project, target, key, body, on=on, quoted=quoted)
        self.posted[(on, target, key)] = note
        return note


class RunAborted(Exception):
    """The run cannot go on (claim lost, issue moved by someone else); nothing is transitioned."""
