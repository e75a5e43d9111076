"""The engine: asks each role for ready work, claims it, runs it, moves it on.

One pass (:meth:`Engine.tick`) lists every role's ready issues per project (one API call
each), honours the pause flags and the concurrency limits, asks the role whether an issue
may start now (dependencies, overlapping work, budgets), claims it (forge/claims) and runs
the role as a background task. The run renews its claim while it works, and on its outcome
the issue is transitioned and the claim released. Webhook events call :meth:`wake`; the
scheduler's poll is the safety net. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from forge import metrics
from forge.calls import fenced
from forge.claims import ClaimLost
from forge.client import ForgeError
from forge.gateway import StaleState
from forge.guard import GuardBlocked
from forge.types import Issue, Note
from roles.attempts import claims_of, round_attempt
from roles.context import HostClaim, RunAborted, RunContext, Services
from roles.gate_recovery import gate_request, issues_at_gates
from roles.gates import GateNotDecided
from roles.gitlab_gates import GitLabGates
from roles.notify import Event, EventKind, GateRequest, for_humans
from roles.qa_parking import ParkedRuns, RunParked
from storage import Run, RunFinishedError, RunStatus
from workflow import Outcome, next_state

log = logging.getLogger(__name__)

PAUSE_ALL = "pause:*"


def pause_key(project: str) -> str:
    return f"pause:{project}"


class Verdict(StrEnum):
    GO = "go"
    WAIT = "wait"  # not now; the reason shows in `crewline status`
    BLOCK = "block"  # never without a human: the issue goes to blocked with the reason


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    reason: str = ""


GO = Admission(Verdict.GO)


@dataclass(frozen=True)
class RoleResult:
    outcome: Outcome
    message: str = ""  # posted as the run's closing note when not empty
    gate: GateRequest | None = None  # the human decision the next state waits for


class Role(Protocol):
    name: str

    async def admit(self, services: Services, issue: Issue) -> Admission: ...

    async def run(self, ctx: RunContext) -> RoleResult: ...


@dataclass
class Waiting:
    role: str
    reason: str


@dataclass
class _InFlight:
    role: str
    task: asyncio.Task[None]


@dataclass
class EngineStats:
    started: int = 0
    finished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Engine:
    def __init__(self, services: Services, roles: Mapping[str, Role]) -> None:
        self.services = services
        self.roles = dict(roles)
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
        self.parked = ParkedRuns(self.wake)  # runs waiting for a pipeline, without a slot

    # ------------------------------------------------------------ driving

    def wake(self) -> None:
        """Look for work now (a webhook said something changed)."""
        self._wake.set()

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
            await _logged("engine pass", self.tick)
            if self._gates_due or time.monotonic() >= reask_at:
                self._gates_due = False
                reask_at = time.monotonic() + poll_seconds
                await _logged("asking again about waiting gates", self.reask_gates)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            self._wake.clear()

    def inflight_keys(self) -> set[tuple[str, int]]:
        """Issues this host works on: running, or parked while they wait (the janitor
        leaves both alone)."""
        return set(self._inflight) | self.parked.keys()

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

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
        kv = self.services.storage.settings
        return await kv.get(PAUSE_ALL) == "1" or await kv.get(pause_key(project)) == "1"

    # ------------------------------------------------------------ one pass

    async def tick(self) -> int:
        """One pass over every project and role; returns how many runs it started."""
        async with self._tick_lock:
            started = await self._resume_parked()
            for project in self.services.projects:
                if await self.paused(project):
                    continue
                for name, role in self.roles.items():
                    started += await self._start_ready(project, name, role)
            return started

    def _slots(self, role: str) -> int:
        settings = self.services.roles
        total = settings.max_concurrent - len(self._inflight)
        mine = sum(1 for entry in self._inflight.values() if entry.role == role)
        return min(total, settings.by_name()[role].concurrency - mine)

    async def _start_ready(self, project: str, name: str, role: Role) -> int:
        if self._slots(name) <= 0 or not self.services.roles.by_name()[name].enabled:
            return 0
        started = 0
        for issue in await self.services.gateway.list_ready(project, name):
            key = (project, issue.iid)
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
        self._inflight[key] = _InFlight(role.name, task)
        self.stats.started += 1
        metrics.run_launched(role.name, task)

        def forget(_: asyncio.Task[None]) -> None:
            self._inflight.pop(key, None)
            self.stats.finished += 1
            self.wake()  # a slot is free, and the next role may now have work

        task.add_done_callback(forget)

    # ------------------------------------------------------------ runs parked while they wait

    def _park(self, role: Role, ctx: RunContext, parked: RunParked) -> None:
        """The run waits for a pipeline: it gives its slot back and keeps its claim (renewed
        while parked); it stays unfinished in SQLite, so a restart resumes it too."""
        log.info("run parked: issue=%s run=%s: %s", ctx.issue.ref, ctx.key, parked)
        self.parked.park(role, ctx, parked, self._renew)

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

    # ------------------------------------------------------------ resuming after a crash

    async def resume(self) -> int:
        """Pick up this worker's runs that a crash or restart interrupted: those recorded in
        SQLite, and claims of ours that a crash left before their run recorded them."""
        resumed, failed = 0, 0
        unclaimed: list[Run] = []
        for run in await self.services.storage.runs.active():
            key = (run.project, run.iid)
            if run.worker != self.services.worker or key in self._inflight or key in self.parked:
                continue
            steps = await self.services.storage.runs.steps(run.id)
            if run.stage in self.roles and not isinstance(steps.get("claim"), dict):
                unclaimed.append(run)  # killed between claiming and recording the claim
                continue
            try:
                resumed += await self._resume_run(run, steps)
            except Exception:  # e.g. GitLab away: left unfinished, tried on the next pass
                failed += 1
                log.exception(
                    "could not resume, trying again on the next pass: issue=%s#%s role=%s run=%s",
                    run.project, run.iid, run.stage, run.id,
                )  # fmt: skip
        resumed += await self._adopt_unrecorded_claims()
        for run in unclaimed:
            if (run.project, run.iid) not in self._inflight:
                await self._abandon_stale(run)
        self._resume_pending = failed > 0
        return resumed

    async def _resume_run(self, run: Run, steps: Mapping[str, Any]) -> int:
        role = self.roles.get(run.stage)
        claimed = steps.get("claim")
        if role is None or not isinstance(claimed, dict):
            await self._abandon_stale(run)
            return 0
        issue = await self.services.gateway.get_issue(run.project, run.iid)
        # A run killed while finishing may have moved the issue on already.
        claim = await self.services.claims.adopt(
            issue, run.stage, str(claimed["run"]), moved_on="moved" in steps
        )
        if claim is None:
            await self._abandon_stale(run)
            return 0
        log.info("resuming run: issue=%s role=%s attempt=%s", issue.ref, role.name, run.attempt)
        self._launch(role, issue, claim, resumed=run)
        return 1

    async def _adopt_unrecorded_claims(self) -> int:
        """Our live claims on running issues that no run of ours holds: a crash came between
        claiming and recording the run. Only this worker id posts them (one process per id),
        so the run is started (or its unrecorded row taken back) under the same claim."""
        adopted = 0
        claims = self.services.claims
        for project in self.services.projects:
            for name, role in self.roles.items():
                ready = self.services.workflow.ready_state(name).label
                for issue in await claims.running(project, name):
                    key = (issue.project, issue.iid)
                    if key in self._inflight or key in self.parked:
                        continue
                    try:
                        adopted += await self._adopt_unrecorded(issue, name, role, ready)
                    except Exception:  # the janitor recovers it once the claim expires
                        log.exception(
                            "could not adopt our claim: issue=%s role=%s", issue.ref, name
                        )
        return adopted

    async def _adopt_unrecorded(self, issue: Issue, name: str, role: Role, ready: str) -> int:
        claims = self.services.claims
        view = await claims.current(issue.project, issue.iid, ready)
        if view is None or view.marker.worker != claims.worker:
            return 0
        if await self._ended_locally(issue, name, view.marker.run):
            return 0  # e.g. abandoned: the janitor recovers the issue
        claim = await claims.adopt(issue, name, view.marker.run)
        if claim is None:
            return 0
        log.info("resuming an unrecorded claim: issue=%s role=%s", issue.ref, name)
        self._launch(role, issue, claim, resumed=None)
        return 1

    async def _ended_locally(self, issue: Issue, role: str, claim_run: str) -> bool:
        runs = self.services.storage.runs
        latest = await runs.latest(issue.project, issue.iid, role)
        if latest is None or not latest.finished:
            return False
        claimed = (await runs.steps(latest.id)).get("claim")
        return isinstance(claimed, dict) and claimed.get("run") == claim_run

    async def _abandon_stale(self, run: Run) -> None:
        await self.services.storage.runs.finish(
            run.id, RunStatus.ABANDONED, "the claim was no longer ours after a restart"
        )

    # ------------------------------------------------------------ one run

    async def _start_run(self, issue: Issue, role: str, claim: HostClaim, notes: list[Note]) -> Run:
        runs = self.services.storage.runs
        # The run's number, the same on every host: this role's claims on the issue.
        attempt = max(1, claims_of(notes, role))
        while True:
            try:
                run = await runs.start(
                    issue.project, issue.iid, role, attempt, self.services.worker
                )
                break
            except RunFinishedError:
                attempt += 1  # a local run of that number ended (e.g. its claim was deleted)
        await runs.checkpoint(run.id, "claim", {"run": claim.run, "note_id": claim.note_id})
        return run

    async def _run(self, role: Role, issue: Issue, claim: HostClaim, resumed: Run | None) -> None:
        services = self.services
        try:
            notes = await services.gateway.notes(issue.project, issue.iid)
            run = resumed or await self._start_run(issue, role.name, claim, notes)
            ctx = RunContext(
                services=services,
                issue=issue,
                role=role.name,
                attempt=run.attempt,
                run=run,
                claim=claim,
                project=services.projects[issue.project],
                done=await services.storage.runs.steps(run.id),
                round_attempt=max(1, round_attempt(notes, role.name)),
            )
        except Exception:
            log.exception("could not start run: issue=%s role=%s", issue.ref, role.name)
            await services.claims.release(claim)
            return
        with fenced(ctx.hold):  # every write others can see, made by this run or its tasks
            await self._work_and_finish(role, ctx)

    async def _work_and_finish(self, role: Role, ctx: RunContext) -> None:
        finishing = ctx.done.get("finish")
        if isinstance(finishing, dict):  # killed while finishing: the work itself is done
            await self._finish_or_log(ctx, _result_of(finishing))
            return
        renewing = asyncio.create_task(self._renew(ctx))
        try:
            result = await self._guarded(role, ctx, renewing)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClaimLost):
                await renewing
        if result is None:
            return
        await self._finish_or_log(ctx, result)

    async def _finish_or_log(self, ctx: RunContext, result: RoleResult) -> None:
        """Finish, or say why not: the run stays unfinished in SQLite, so a restart (or
        another host's janitor, once the claim expires) completes what is left."""
        try:
            await self._finish(ctx, result)
        except ClaimLost as lost:
            await self._abandon(ctx, f"the claim was lost before the run finished: {lost}")
        except Exception:
            log.exception(
                "run could not finish, a restart resumes it: issue=%s role=%s run=%s",
                ctx.issue.ref, ctx.role, ctx.key,
            )  # fmt: skip

    async def _guarded(
        self, role: Role, ctx: RunContext, renewing: asyncio.Task[None]
    ) -> RoleResult | None:
        """The role's result; None when the run was taken away from us (nothing to do)."""
        work = asyncio.create_task(role.run(ctx))
        try:
            done, _ = await asyncio.wait({work, renewing}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()  # shutting down: the agent's process group is killed with it
            with contextlib.suppress(BaseException):
                await work
            raise
        if work not in done:  # the renewer ended first: the claim is lost
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            await self._abandon(ctx, "the claim expired and was taken over")
            return None
        try:
            return work.result()
        except (RunAborted, ClaimLost) as stop:
            await self._abandon(ctx, str(stop))
            return None
        except RunParked as parked:
            self._park(role, ctx, parked)
            return None
        except GuardBlocked as blocked:
            # A refused write is not a crash: retrying sends the same text again, so the
            # issue stops here, with the reason, instead of looping until it fails.
            log.warning("guard refused a write: issue=%s run=%s: %s", ctx.issue.ref, ctx.key,
                        blocked.rule)  # fmt: skip
            return RoleResult(
                Outcome.BLOCKED,
                f"crewline refused to write this to GitLab: {blocked}. "
                "A human must remove or rephrase it, then move the issue back.",
            )
        except ForgeError as error:
            log.warning("run failed on GitLab: issue=%s run=%s: %s", ctx.issue.ref, ctx.key, error)
            return self._retry_or_exhaust(ctx, f"GitLab error: {error}")
        except Exception as error:
            log.exception("run crashed: issue=%s run=%s", ctx.issue.ref, ctx.key)
            return self._retry_or_exhaust(ctx, f"{type(error).__name__}: {error}")

    def _retry_or_exhaust(self, ctx: RunContext, why: str) -> RoleResult:
        """Crash attempts count per round (roles/attempts.py): work sent back by QA or a
        review starts a new round, it does not use up the attempts."""
        limit = self.services.roles.by_name()[ctx.role].max_attempts
        attempt = ctx.round_attempt
        if attempt < limit:
            return RoleResult(
                Outcome.EXPIRED,
                f"attempt {attempt} of {limit} stopped ({why}); re-queued for another attempt",
            )
        return RoleResult(Outcome.EXHAUSTED, f"attempt {attempt} of {limit} failed: {why}")

    async def _renew(self, ctx: RunContext) -> None:
        interval = max(0.5, self.services.claims.ttl / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                ctx.claim = await self.services.claims.renew(ctx.claim)
            except ForgeError as error:
                # GitLab is briefly away: keep working; the claim survives until its expiry.
                log.warning("claim renewal failed: issue=%s: %s", ctx.issue.ref, error)

    async def _abandon(self, ctx: RunContext, why: str) -> None:
        log.warning("run abandoned: issue=%s run=%s: %s", ctx.issue.ref, ctx.key, why)
        await self.services.storage.runs.finish(ctx.run.id, RunStatus.ABANDONED, why)
        metrics.run_finished(ctx.role, "abandoned")
        await self.services.claims.leases.release(ctx.claim.lease)

    async def _finish(self, ctx: RunContext, result: RoleResult) -> None:
        """Move the issue on, release the claim, tell and ask the humans, end the run.

        The result and the move are checkpoints and the rest is idempotent, so a run killed
        here finishes on restart (its last notification or desk request may come twice)."""
        services, issue = self.services, ctx.issue
        wf = services.workflow
        running = wf.running_state(ctx.role).name

        async def record() -> dict[str, Any]:
            return _result_json(result)

        result = _result_of(await ctx.step("finish", record))
        target = next_state(wf, running, result.outcome)
        if result.message:
            # Outcome notes quote CI logs, test output and goal text: redacted, never refused.
            await ctx.note("outcome", result.message, quoted=True)

        async def move() -> str:
            # The write is fenced by this run's claim, checked after the transition read the
            # labels: the running state it passes on is this round's, never the next one's.
            try:
                await services.gateway.transition(
                    issue.project, issue.iid, target, expect={running}
                )
            except StaleState as stale:
                if stale.actual != target:  # already there: moved before a crash
                    raise
            return target

        try:
            await ctx.step("moved", move)
        except StaleState as stale:
            await self._abandon(ctx, f"someone else moved the issue: {stale}")
            return
        await services.claims.release(ctx.claim)
        with fenced(None):  # the claim is over; a desk deciding the gate acts for a human
            await self._tell(_event_kind(target), issue, result.message, running, target)
            if result.gate is not None:
                await self._tell(
                    EventKind.GATE, issue, f"waiting for a human at {target}", running, target
                )
                try:
                    await services.desk.request(result.gate)
                except GateNotDecided as undecided:
                    # Not decided, so not finished: reask_gates (and a restart) asks again.
                    log.warning("gate undecided, asked again later: run=%s: %s", ctx.key, undecided)
                    return
                self._gates_asked.add((issue.project, issue.iid))
        # Last: until the run is finished a restart resumes it, so the desk is asked for sure.
        status = _run_status(result.outcome)
        await services.storage.runs.finish(ctx.run.id, status, result.message or None)
        metrics.run_finished(ctx.role, str(result.outcome))
        self.stats.outcomes[str(result.outcome)] = (
            self.stats.outcomes.get(str(result.outcome), 0) + 1
        )
        log.info(
            "run finished: issue=%s run=%s outcome=%s -> %s",
            issue.ref,
            ctx.key,
            result.outcome,
            target,
        )
        self.wake()  # the next role may have work now

    async def reask_gates(self) -> int:
        """Decide the gates GitLab has decided (a 👍, a reply, an Approve: see
        ``roles/gitlab_gates.py``), then ask the desk about issues waiting at a gate that no
        desk of this process took: its request failed (a decision it could not apply), or a
        crash or restart came before it. How many requests the desk took."""
        asked = 0
        gateway = self.services.gateway
        for project in self.services.projects:
            waiting = await issues_at_gates(gateway, project)
            here = {(project, issue.iid) for issue, _ in waiting}
            # An issue that left its gate is asked again whenever it comes back.
            self._gates_asked = {k for k in self._gates_asked if k[0] != project or k in here}
            for issue, gate in waiting:
                key = (project, issue.iid)
                if key in self._inflight:
                    continue
                try:
                    decided = await self.gitlab_gates.look(issue, gate)
                except ForgeError as error:
                    log.warning("reading a gate in GitLab failed: issue=%s: %s", issue.ref, error)
                    decided = None
                if decided is not None:
                    self.wake()  # the issue moved on: the next role may have work
                    continue
                if key in self._gates_asked:
                    continue
                request = await gate_request(gateway, issue, gate)
                if request is None:
                    continue
                try:
                    await self.services.desk.request(request)
                except GateNotDecided as undecided:
                    log.warning("gate still undecided, asking again later: %s", undecided)
                    continue
                except Exception:
                    log.exception("desk failed, asking again later: issue=%s", issue.ref)
                    continue
                self._gates_asked.add(key)
                asked += 1
        return asked

    async def _tell(
        self, kind: EventKind, issue: Issue, message: str, from_state: str, to_state: str
    ) -> None:
        event = Event(
            kind,
            issue.project,
            issue.iid,
            issue.title,
            for_humans(message),
            from_state,
            to_state,
            issue.web_url,
        )
        try:
            await self.services.notifier.notify(event)
        except Exception:
            log.exception("notifier failed: issue=%s", issue.ref)


async def _logged(what: str, action: Callable[[], Awaitable[int]]) -> None:
    """Run one pass; a failure is logged and the pass tried again on the next wake."""
    try:
        await action()
    except ForgeError as error:
        log.warning("%s failed, retrying on the next wake: %s", what, error)
    except Exception:
        log.exception("%s failed, retrying on the next wake", what)


def _result_json(result: RoleResult) -> dict[str, Any]:
    gate = asdict(result.gate) if result.gate is not None else None
    return {"outcome": str(result.outcome), "message": result.message, "gate": gate}


def _result_of(data: dict[str, Any]) -> RoleResult:
    gate = data.get("gate")
    return RoleResult(
        Outcome(data["outcome"]),
        str(data.get("message") or ""),
        GateRequest(**gate) if isinstance(gate, dict) else None,
    )


def _run_status(outcome: Outcome) -> RunStatus:
    if outcome is Outcome.SUCCEEDED:
        return RunStatus.SUCCEEDED
    if outcome is Outcome.BLOCKED:
        return RunStatus.BLOCKED
    return RunStatus.FAILED


def _event_kind(target: str) -> EventKind:
    if target == "blocked":
        return EventKind.BLOCKED
    if target == "failed":
        return EventKind.FAILED
    if target == "needs-input":
        return EventKind.QUESTION
    return EventKind.TRANSITION
