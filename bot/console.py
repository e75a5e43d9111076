"""The console surface: the engine's notifier and desk on a terminal.

Used by `crewline demo` and by headless hosts. The desk approves plans and merges
automatically (saying so), or asks at the terminal with ``interactive=True``.
"""

from __future__ import annotations

import asyncio
import logging

from rich.console import Console

from forge.gateway import Gateway
from forge.merge_gateway import MergeGateway
from roles.gates import decide_merge, decide_plan
from roles.notify import Event, EventKind, GateRequest
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
    def __init__(self, console: Console) -> None:
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
        console: Console,
        gateway: Gateway,
        leases: LeaseStore,
        *,
        interactive: bool = False,
        who: str = "console",
        merger: MergeGateway | None = None,
    ) -> None:
        self.merger = merger
        self.console = console
        self.gateway = gateway
        self.leases = leases
        self.interactive = interactive
        self.who = who

    async def request(self, gate: GateRequest) -> None:
        approve, feedback = True, ""
        if self.interactive:
            approve, feedback = await self._ask(gate)
        via = "console" + ("" if self.interactive else " (auto-approved)")
        if gate.gate == self.gateway.workflow.gate_state("plan").name:
            decision = await decide_plan(
                self.gateway, self.leases, gate.project, gate.iid, revision=gate.revision,
                approve=approve, who=self.who, via=via, feedback=feedback,
            )  # fmt: skip
        else:
            decision = await decide_merge(
                self.gateway, self.leases, gate.project, gate.iid, revision=gate.revision,
                approve=approve, who=self.who, via=via, feedback=feedback, merger=self.merger,
            )  # fmt: skip
        self.console.print(
            f"         decision   {gate.project}#{gate.iid:<8} {decision.message}",
            style="magenta",
            markup=False,
        )

    async def _ask(self, gate: GateRequest) -> tuple[bool, str]:
        what = "Plan" if gate.gate == self.gateway.workflow.gate_state("plan").name else "Merge"
        self.console.rule(f"{what} of {gate.project}#{gate.iid}: {gate.title}")
        self.console.print(gate.summary, markup=False)
        answer = await asyncio.to_thread(
            input, f"Approve this {what.lower()}? [Y]es, or type what should change: "
        )
        if answer.strip().lower() in ("", "y", "yes"):
            return True, ""
        return False, answer.strip()
