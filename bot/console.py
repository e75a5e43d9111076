"""The console surface: the engine's notifier and desk on a terminal.

Used by `crewline demo` and by headless hosts. The desk approves plans and merges
automatically (saying so), or asks at the terminal with ``interactive=True``: one question
at a time, and once standard input is closed it asks no more (the gates wait in GitLab).
A decision it could not apply (another process holds the gate, GitLab refused the merge)
is printed and raised as :class:`~roles.gates.decide.GateNotDecided`, so the engine does not take
the gate for decided and asks again.
"""

from __future__ import annotations

import asyncio
import logging

from bot.plain_console import PlainConsole, Printer
from roles.context import Services
from roles.gates.decide import GateNotDecided, decide_merge, decide_plan
from roles.notify import Event, EventKind, GateRequest
from roles.ports import IssueTracker, MergeRequests
from storage import LeaseStore

log = logging.getLogger(__name__)

_STYLES = {
    EventKind.TRANSITION: "cyan",
    EventKind.GATE: "magenta",
    EventKind.BLOCKED: "yellow",
    EventKind.FAILED: "red",
    EventKind.BUDGET: "red",
    EventKind.STUCK: "yellow",
    EventKind.INFO: "white",
}


class ConsoleNotifier:
    def __init__(self, console: Printer) -> None:
        self.console = console

    async def notify(self, event: Event) -> None:
        moved = f"{event.from_state} -> {event.to_state}" if event.to_state else ""
        first_line = event.message.strip().splitlines()[0] if event.message.strip() else ""
        style = _STYLES.get(event.kind, "white")
        # markup=False: issue and agent text must never be interpreted as console markup.
        self.console.print(
            f"{event.at:%H:%M:%S} {event.kind.value:<10} {event.ref:<14} {moved:<28} {first_line}",
            style=style,
            markup=False,
            highlight=False,
        )


class ConsoleDesk:
    def __init__(
        self,
        console: Printer,
        gateway: IssueTracker,
        leases: LeaseStore,
        *,
        interactive: bool = False,
        who: str = "console",
        merger: MergeRequests | None = None,
        worker: str | None = None,
        humans_merge: str | None = None,
    ) -> None:
        self.merger = merger
        # Issues with this label wait at the merge gate for a person even when the desk
        # approves the rest (the demo's flaky-test fix: the merge is the human's).
        self.humans_merge = humans_merge
        self.worker = worker or who  # the gate lease's holder: this host's worker id
        self.console = console
        self.gateway = gateway
        self.leases = leases
        self.interactive = interactive
        self.who = who
        self.input_closed = False  # interactive, and standard input reached its end
        self._asking = asyncio.Lock()  # two gates at once must not share one prompt

    @classmethod
    def of(
        cls,
        services: Services,
        *,
        who: str,
        console: Printer | None = None,
        interactive: bool = False,
        humans_merge: str | None = None,
    ) -> ConsoleDesk:
        """The console desk of a host: it decides through the host's gateway, holds gate
        leases under the host's worker id and merges with the host's merge identity (when it
        has one). ``console`` defaults to a silent one."""
        return cls(
            console or PlainConsole(quiet=True),
            services.gateway,
            services.storage.leases,
            interactive=interactive,
            who=who,
            merger=services.merger,
            worker=services.worker,
            humans_merge=humans_merge,
        )

    async def request(self, gate: GateRequest) -> None:
        approve, feedback = True, ""
        if await self._for_a_human(gate):
            self.console.print(
                f"         decision   {gate.project}#{gate.iid:<8} left at the merge gate "
                f"for a human (labelled {self.humans_merge})",
                style="magenta",
                markup=False,
            )
            return
        if self.interactive:
            answer = await self.ask(gate)
            if answer is None:
                return
            approve, feedback = answer
        via = "console" + ("" if self.interactive else " (auto-approved)")
        if gate.gate == self.gateway.workflow.gate_state("plan").name:
            decision = await decide_plan(
                self.gateway, self.leases, gate.project, gate.iid, revision=gate.revision,
                approve=approve, who=self.who, via=via, feedback=feedback, worker=self.worker,
            )  # fmt: skip
        else:
            decision = await decide_merge(
                self.gateway, self.leases, gate.project, gate.iid, revision=gate.revision,
                approve=approve, who=self.who, via=via, feedback=feedback, merger=self.merger,
                worker=self.worker,
            )  # fmt: skip
        self.console.print(
            f"         decision   {gate.project}#{gate.iid:<8} {decision.message}",
            style="magenta" if decision.applied or not decision.pending else "yellow",
            markup=False,
        )
        if decision.pending:
            raise GateNotDecided(f"{gate.project}#{gate.iid}: {decision.message}")

    async def _for_a_human(self, gate: GateRequest) -> bool:
        if self.humans_merge is None or gate.gate != self.gateway.workflow.gate_state("merge").name:
            return False
        issue = await self.gateway.get_issue(gate.project, gate.iid)
        return self.humans_merge in issue.labels

    async def ask(self, gate: GateRequest) -> tuple[bool, str] | None:
        """(approve, feedback), or None when nobody can answer any more."""
        what = "Plan" if gate.gate == self.gateway.workflow.gate_state("plan").name else "Merge"
        async with self._asking:
            if self.input_closed:
                return None
            self.console.rule(f"{what} of {gate.project}#{gate.iid}: {gate.title}")
            self.console.print(gate.summary, markup=False)
            try:
                answer = await asyncio.to_thread(
                    input, f"Approve this {what.lower()}? [Y]es, or type what should change: "
                )
            except EOFError:
                self.input_closed = True
                self.console.print(
                    f"\nno answer for {gate.project}#{gate.iid}: standard input is closed; it "
                    "waits at its gate (decide in GitLab, or run again at a terminal)",
                    style="yellow",
                    markup=False,
                )
                return None
        if answer.strip().lower() in ("", "y", "yes"):
            return True, ""
        return False, answer.strip()
