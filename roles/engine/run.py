"""One run: recorded, fenced by its claim, renewed while it works, finished by moving the
issue on and releasing the claim (docs/decisions/0007, 0013). Part of the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from forge import metrics
from forge.calls import fenced
from forge.claims import ClaimLost
from forge.client import ForgeError
from forge.gateway import StaleState
from forge.guard import GuardBlocked
from forge.sink import seal_all
from forge.types import Issue, Note
from roles.attempts import claims_of, round_attempt
from roles.budget import BudgetHeld, hold_notice
from roles.context import HostClaim, RunAborted, RunContext, Services
from roles.engine.admission import Role, RoleResult, event_kind, result_json, result_of, run_status
from roles.engine.fence import RunFence
from roles.gates.decide import GateNotDecided
from roles.notify import Event, EventKind, for_humans
from roles.qa.parking import RunParked
from storage import Run, RunFinishedError, RunStatus
from workflow import Outcome, next_state

log = logging.getLogger("roles.engine")


@dataclass
class EngineStats:
    started: int = 0
    finished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Running:
    """The engine's runs (a base of :class:`roles.engine.loop.Engine`)."""

    services: Services
    _gates_asked: set[tuple[str, int]]
    stats: EngineStats

    def _park(self, role: Role, ctx: RunContext, parked: RunParked) -> None:
        raise NotImplementedError

    async def _carry_role(self, ctx: RunContext, target: str) -> Role | None:
        raise NotImplementedError

    async def _carry_again(self, ctx: RunContext, moved: str) -> tuple[Role, Issue] | None:
        raise NotImplementedError

    def _launch(self, role: Role, issue: Issue, claim: HostClaim, resumed: Run | None) -> None:
        raise NotImplementedError

    async def _start_run(self, issue: Issue, role: str, claim: HostClaim, notes: list[Note]) -> Run:
        runs = self.services.storage.runs
        # The run's number, the same on every host: this role's claims on the issue.
        attempt = max(1, claims_of(notes, role, upto=claim.note_id))
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
            # The claim just read the notes: an adopted claim (a restart) reads them again.
            notes = list(claim.notes) or await services.gateway.notes(issue.project, issue.iid)
            run = resumed or await self._start_run(issue, role.name, claim, notes)
            done = await services.storage.runs.steps(run.id)
            ctx = RunContext(
                services=services,
                issue=issue,
                role=role.name,
                attempt=run.attempt,
                run=run,
                claim=claim,
                project=services.projects[issue.project],
                done=done,
                round_attempt=max(1, round_attempt(notes, role.name)),
                # Nothing of this run can be in GitLab yet: its keyed notes need no lookup.
                fresh=resumed is None and set(done) <= {"claim"},
            )
        except Exception:
            log.exception("could not start run: issue=%s role=%s", issue.ref, role.name)
            await services.claims.release(claim)
            return
        # Every write others can see, made by this run or its tasks (decisions 0013, 0041).
        with fenced(RunFence(ctx)):
            await self._work_and_finish(role, ctx)

    async def _work_and_finish(self, role: Role, ctx: RunContext) -> None:
        finishing = ctx.done.get("finish")
        if isinstance(finishing, dict):  # killed while finishing: the work itself is done
            await self._finish_or_log(ctx, result_of(finishing))
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
        except BudgetHeld as held:  # back to the ready state, where admission holds it
            await hold_notice(self.services, ctx.issue, held.reason)
            return RoleResult(Outcome.EXPIRED)
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
            return result_json(result)

        result = result_of(await ctx.step("finish", record))
        target = next_state(wf, running, result.outcome)
        if result.message:
            # Outcome notes quote CI logs, test output and goal text: redacted, never refused.
            # Checkpointed through the sink (result_json): what markers it keeps are its own.
            await ctx.note("outcome", seal_all(result.message), quoted=True)
        # A carry-over (decision 0037): this host goes on with the next role, straight from
        # this running state to the next one. Decided once: a resumed run finds the move.
        carry = None if "moved" in ctx.done else await self._carry_role(ctx, target)
        moved_to = wf.running_state(carry.name).name if carry is not None else target
        answer: list[Issue] = []

        async def move() -> str:
            # The write is fenced by this run's claim, checked after the labels were read:
            # the running state it passes on is this round's, never the next one's. One
            # label events read does both when it proves the labels unchanged since the
            # claim's move (decision 0041); else the issue is read and the fence checked.
            gateway = services.gateway
            try:
                held = await services.claims.held_labels(ctx.claim)
                if held is None:
                    moving = gateway.transition(
                        issue.project, issue.iid, moved_to, expect={running}
                    )
                    answer.append(await moving)
                else:
                    with fenced(None):  # judged just now, on the read that gave the labels
                        known = replace(issue, labels=held)
                        answer.append(
                            await gateway.transition(
                                issue.project, issue.iid, moved_to, expect={running}, known=known
                            )
                        )
            except StaleState as stale:
                if stale.actual != moved_to:  # already there: moved before a crash
                    raise
            return moved_to

        try:
            moved = await ctx.step("moved", move)
        except StaleState as stale:
            await self._abandon(ctx, f"someone else moved the issue: {stale}")
            return
        carrying = (carry, answer[0]) if carry is not None and answer else None
        if carry is None and moved != target:
            # Resumed: killed between a carry-over's move and its claim (decision 0037).
            carrying = await self._carry_again(ctx, str(moved))
        await services.claims.release(ctx.claim, keep_lease=carrying is not None)
        if carrying is not None:
            await self._carry(ctx, *carrying)
        with fenced(None):  # the claim is over; a desk deciding the gate acts for a human
            await self._tell(event_kind(target), issue, result.message, running, target)
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
        status = run_status(result.outcome)
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

    async def _carry(self, ctx: RunContext, role: Role, moved: Issue) -> None:
        """Claim the issue this run just moved to ``role``'s running state and launch that
        run (decision 0037). Lost (a human re-queued it meanwhile): the lease goes; a crash
        before the claim note leaves the issue to the janitor, as any claim without a note."""
        services = self.services
        claim = ctx.claim
        try:
            carried = await services.claims.carry(claim, moved, role.name, uuid.uuid4().hex[:12])
        except Exception:
            await services.claims.leases.release(claim.lease)
            raise
        if carried is None:
            await services.claims.leases.release(claim.lease)
            return
        with fenced(None):  # the new run sets its own fence; it must not inherit this one
            self._launch(role, moved, carried, resumed=None)

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
