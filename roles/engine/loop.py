"""The engine: asks each role for ready work, claims it, runs it, moves it on.

A full pass (:meth:`Engine.tick`, on the poll) refreshes each project's one listing
(forge/issue_index: one call when nothing changed), honours the pause flags and the
concurrency limits, asks the role whether an issue may start now (dependencies, overlapping
work, budgets), claims it (forge/claims) and runs the role as a background task. The run
renews its claim while it works, and on its outcome the issue is transitioned and the claim
released.

Between polls the engine acts on single issues (:meth:`Engine.notice`): a webhook event
about an issue, or a move this process made itself (the gateway tells the engine as it
writes; the webhook echo of our own write wakes nothing). A freed slot looks again at the
ready issues of the last listing without listing again. Events are coalesced per issue.
The poll stays the safety net for missed events (docs/decisions/0028). Nothing here blocks
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from forge import metrics
from forge.client import ForgeError
from forge.gateway import StaleState
from forge.types import Issue
from roles.context import HostClaim, RunContext, Services
from roles.engine.admission import (
    GO,
    Admission,
    Role,
    RoleResult,
    Verdict,
    Waiting,
)
from roles.engine.carry import CarryingOver
from roles.engine.gates import AskingGates
from roles.engine.resume import Resuming
from roles.engine.run import EngineStats, Running
from roles.gates.gitlab import GitLabGates
from roles.notify import EventKind
from roles.qa.parking import ParkedRuns, RunParked
from storage import Run
from workflow import Outcome, next_state

__all__ = [
    "GO",
    "PAUSE_ALL",
    "Admission",
    "Engine",
    "Role",
    "RoleResult",
    "Verdict",
    "Waiting",
    "pause_key",
]

log = logging.getLogger(__name__)

PAUSE_ALL = "pause:*"  # the audit target of a pause of every project


def pause_key(project: str) -> str:
    """The audit target of a pause of one project (the pause itself is on GitLab)."""
    return f"pause:{project}"


@dataclass
class _InFlight:
    role: str
    task: asyncio.Task[None]


# What an event says about its issue: the fresh issue (our own write's answer), its labels
# (an issue webhook), or nothing (a note on it: the listing's copy is looked at).
Seen = Issue | tuple[str, ...] | None


class Engine(CarryingOver, Running, Resuming, AskingGates):
    def __init__(self, services: Services, roles: Mapping[str, Role]) -> None:
        self.services = services
        self.roles = dict(roles)
        wf = services.workflow
        self._ready_roles = {wf.ready_state(name).label: name for name in self.roles}
        self._pending: dict[tuple[str, int], Seen] = {}  # issues events asked about
        self._full_due = True  # a full pass (the poll) is due
        self._slots_freed = False  # a run ended: the last listing's ready work may start
        self._parked_waking = False  # a parked run is due: only the parked runs are looked at
        services.gateway.moved.append(self._moved)
        self.waiting: dict[tuple[str, int], Waiting] = {}
        self.stats = EngineStats()
        self._inflight: dict[tuple[str, int], _InFlight] = {}
        self._wake = asyncio.Event()
        self._tick_lock = asyncio.Lock()
        # Issues at a gate whose request a desk of this process took (asked, not failed).
        self._gates_asked: set[tuple[str, int]] = set()
        self._resume_pending = True  # until one resume pass has seen every interrupted run
        self.gitlab_gates = GitLabGates(services)  # 👍 and Approve decide in GitLab
        self._gates_due = False
        # Runs waiting for a pipeline, without a slot; due ones start on the next event pass.
        self.parked = ParkedRuns(self._parked_due)

    # ------------------------------------------------------------ driving

    def wake(self) -> None:
        """A full pass now: the poll, or something whose effect on the work is unknown."""
        self._full_due = True
        self._wake.set()

    def notice(self, project: str, iid: int, seen: Seen = None) -> None:
        """Look at this one issue soon (a webhook event about it); several events about one
        issue before the engine gets to it make one look."""
        key = (project, iid)
        if isinstance(self._pending.get(key), Issue) and not isinstance(seen, Issue):
            return  # already holding a fresher copy than the event carries
        self._pending[key] = seen
        self._wake.set()

    def _moved(self, issue: Issue) -> None:
        """The gateway moved ``issue`` for this process (a run finishing, the desk, the
        janitor): its echo wakes nothing, so the engine takes note here."""
        if self._ready_role(issue.labels) is not None:
            self.notice(issue.project, issue.iid, issue)

    def _ready_role(self, labels: Sequence[str]) -> str | None:
        return next((self._ready_roles[lab] for lab in labels if lab in self._ready_roles), None)

    def wake_gates(self) -> None:
        """Look at the gates now (a webhook said someone reacted to a plan or approved)."""
        self._gates_due = True
        self._wake.set()

    async def run_forever(self, poll_seconds: float) -> None:
        """Resume interrupted runs, then tick whenever woken and at least every
        ``poll_seconds``, and ask again about gates no desk took, at start and once per
        ``poll_seconds``. Nothing one issue does stops the host: a failed pass is logged
        and tried again on the next wake."""
        reask_at = 0.0
        while True:
            if self._resume_pending:
                await _logged("resuming interrupted runs", self.resume)
            if self._full_due:
                await _logged("engine pass", self.tick)
            elif self._pending or self._slots_freed or self._parked_waking:
                await _logged("event pass", self.tick_events)
            if self._gates_due or time.monotonic() >= reask_at:
                self._gates_due = False
                reask_at = time.monotonic() + poll_seconds
                await _logged("asking again about waiting gates", self.reask_gates)
            if not await _woken(self._wake, poll_seconds):
                self._full_due = True  # the safety net, should the scheduler's poll not come
            self._wake.clear()

    def inflight_keys(self) -> set[tuple[str, int]]:
        """Issues this host works on: running, or parked while they wait (the janitor
        leaves both alone)."""
        return set(self._inflight) | self.parked.keys()

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    async def between_passes(self, *, busy: float, idle: float) -> None:
        """The pause of a caller that drives the engine pass by pass (the demo, the tests):
        with runs in flight, until one of them ends (at most ``busy`` seconds), since the
        next pass has news only then; with none, ``idle`` seconds, for what moves with time
        (parked QA, pipelines, a gate)."""
        tasks = [entry.task for entry in self._inflight.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=busy, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(idle)

    async def drain(self) -> None:
        """Wait for every started run to finish."""
        while self._inflight:
            await asyncio.gather(
                *(entry.task for entry in list(self._inflight.values())), return_exceptions=True
            )

    async def stop(self) -> None:
        for entry in list(self._inflight.values()):
            entry.task.cancel()
        await self.drain()
        await self.parked.stop()

    async def paused(self, project: str) -> bool:
        """Paused on the project's control issue, by any host (roles/fleet_state.py)."""
        return self.services.fleet.paused(project)

    # ------------------------------------------------------------ one pass

    async def tick(self) -> int:
        """A full pass over every project and role, on a fresh listing; returns how many
        runs it started."""
        async with self._tick_lock:
            self._full_due = False
            await self.services.fleet.refresh_if_stale()  # once per poll: pause, spend
            self._pending.clear()  # the fresh listing sees what they said
            self._slots_freed = self._parked_waking = False
            started = await self._resume_parked()
            return started + await self._pass(refresh=True)

    async def tick_events(self) -> int:
        """Act on the issues events asked about, and, when a run ended, on the ready issues
        of the last listing; no listing call. Returns how many runs it started."""
        async with self._tick_lock:
            # Read again only when stale, or when a webhook said the control issue changed
            # (a pause another host wrote): the events below must not claim through it.
            await self.services.fleet.refresh_if_stale()
            pending, self._pending = self._pending, {}
            freed, self._slots_freed = self._slots_freed, False
            self._parked_waking = False
            started = await self._resume_parked()
            for (project, iid), seen in pending.items():
                try:
                    started += await self._look(project, iid, seen)
                except ForgeError as error:
                    log.warning("could not look at issue=%s#%s: %s", project, iid, error)
            if freed:
                started += await self._pass(refresh=False)
            return started

    async def _pass(self, *, refresh: bool) -> int:
        started = 0
        index = self.services.gateway.issues
        for project in self.services.projects:
            if await self.paused(project):
                continue
            listing = await index.refresh(project) if refresh else index.listing(project)
            if listing is None:
                continue  # nothing listed yet: the first full pass will
            for name, role in self.roles.items():
                ready = listing.at(self.services.workflow.ready_state(name).label)
                if refresh:
                    metrics.READY_ISSUES.labels(name, project).set(len(ready))
                started += await self._start_ready(name, role, ready)
        return started

    async def _look(self, project: str, iid: int, seen: Seen) -> int:
        """One issue an event named: started when it is ready for a role with a free slot."""
        if (project, iid) in self._inflight or await self.paused(project):
            return 0
        if isinstance(seen, Issue):
            issue: Issue | None = seen
        elif seen is None:  # a note: only what the listing says may make it ready
            listing = self.services.gateway.issues.listing(project)
            issue = listing.get(iid) if listing is not None else None
        elif self._ready_role(seen) is None:
            return 0  # not at a ready state: no call
        else:
            issue = await self.services.gateway.get_issue(project, iid)
        if issue is None or issue.state != "opened":
            return 0
        name = self._ready_role(issue.labels)
        if name is None:
            return 0
        return await self._start_ready(name, self.roles[name], [issue])

    async def _start_ready(self, name: str, role: Role, ready: Sequence[Issue]) -> int:
        if self._slots(name) <= 0 or not self.services.roles.by_name()[name].enabled:
            return 0
        started = 0
        for issue in ready:
            key = (issue.project, issue.iid)
            if key in self._inflight or self._slots(name) <= 0:
                continue
            try:
                started += await self._start_one(issue, name, role)
            except Exception:  # one issue's failure leaves the others to run
                log.exception("could not start: issue=%s role=%s", issue.ref, name)
        return started

    async def _start_one(self, issue: Issue, name: str, role: Role) -> int:
        key = (issue.project, issue.iid)
        admission = await role.admit(self.services, issue)
        if admission.verdict is Verdict.WAIT:
            self.waiting[key] = Waiting(name, admission.reason)
            if admission.announce is not None:
                await admission.announce()
            return 0
        self.waiting.pop(key, None)
        if admission.verdict is Verdict.BLOCK:
            await self._block_ready(issue, name, admission.reason)
            return 0
        claim = await self.services.claims.claim(issue, name, uuid.uuid4().hex[:12])
        if claim is None:
            return 0
        self._launch(role, issue, claim, resumed=None)
        return 1

    async def _block_ready(self, issue: Issue, role: str, reason: str) -> None:
        wf = self.services.workflow
        ready = wf.ready_state(role).name
        target = next_state(wf, ready, Outcome.BLOCKED)
        try:
            await self.services.gateway.transition(issue.project, issue.iid, target, expect={ready})
        except StaleState:
            return
        await self.services.gateway.post_note(
            issue.project, issue.iid, f"crewline stopped this issue: {reason}"
        )
        await self._tell(EventKind.BLOCKED, issue, reason, ready, target)

    def _launch(self, role: Role, issue: Issue, claim: HostClaim, resumed: Run | None) -> None:
        key = (issue.project, issue.iid)
        task = asyncio.create_task(
            self._run(role, issue, claim, resumed), name=f"run {issue.ref} {role.name}"
        )
        entry = self._inflight[key] = _InFlight(role.name, task)
        self.stats.started += 1
        metrics.run_launched(role.name, task)

        def forget(_: asyncio.Task[None]) -> None:
            if self._inflight.get(key) is entry:  # not the run it carried the issue over to
                del self._inflight[key]
            self.stats.finished += 1
            # A slot is free: the last listing's ready work (and the issue this run just
            # moved on) may start, without listing again.
            self._slots_freed = True
            self._wake.set()

        task.add_done_callback(forget)

    # ------------------------------------------------------------ runs parked while they wait

    def _park(self, role: Role, ctx: RunContext, parked: RunParked) -> None:
        """The run waits for a pipeline: it gives its slot back and keeps its claim (renewed
        while parked); it stays unfinished in SQLite, so a restart resumes it too."""
        log.info("run parked: issue=%s run=%s: %s", ctx.issue.ref, ctx.key, parked)
        self.parked.park(role, ctx, parked, self._renew)

    def _parked_due(self) -> None:
        """A parked run is due: an event pass launches it, without listing, and without
        looking at the listing's ready work again (no slot was freed: admissions, which may
        read GitLab, are not asked again)."""
        self._parked_waking = True
        self._wake.set()

    async def _resume_parked(self) -> int:
        """Launch parked runs that are due, while their role has a slot; abandon those whose
        claim was lost. Before new work, so a due run is not starved by fresh claims."""
        resumed = 0
        for run in self.parked.due():
            lost = run.lost
            if lost is None and self._slots(run.ctx.role) <= 0:
                continue  # stays parked and renewed; a finished run wakes the engine
            ctx = await self.parked.take(run)
            if lost is not None:
                await self._abandon(ctx, lost)
                continue
            self._launch(run.role, ctx.issue, ctx.claim, resumed=ctx.run)
            resumed += 1
        return resumed

    def wake_parked(self, project: str, *, mr_iid: int | None = None, ref: str = "") -> None:
        """A pipeline or merge request event: the parked runs watching it look now."""
        self.parked.wake_for(project, mr_iid=mr_iid, ref=ref)


async def _woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``. Not ``asyncio.wait_for``: on Python 3.11 it can
    swallow a cancellation that lands as the event is set, and the engine is woken often, so
    a host asked to stop would go on; ``asyncio.timeout`` counts cancellations."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def _logged(what: str, action: Callable[[], Awaitable[int]]) -> None:
    """Run one pass; a failure is logged and the pass tried again on the next wake."""
    try:
        await action()
    except ForgeError as error:
        log.warning("%s failed, retrying on the next wake: %s", what, error)
    except Exception:
        log.exception("%s failed, retrying on the next wake", what)
