"""`crewline run` and `crewline worker`: the engine, its scheduler, and (for run) the
webhook receiver, until interrupted (Ctrl-C, or SIGTERM from a supervisor: both stop
in-flight runs, killing their agents, and close everything before exiting 0)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Protocol

from bot.app import Runtime, build_runtime
from bot.config import ConfigError, CrewlineConfig, Secrets
from bot.console import ConsoleDesk, ConsoleNotifier
from bot.plain_console import PlainConsole, Printer
from bot.scheduler import build_scheduler
from forge.client import ForgeError
from forge.privilege import merge_power
from forge.webhooks.events import (
    IssueEvent,
    MergeRequestEvent,
    PipelineEvent,
    WebhookEvent,
)
from roles.engine.events import route_event as route_to_engine
from roles.engine.loop import Engine
from roles.notify import Desk, GateRequest

if TYPE_CHECKING:
    # discord.py is imported only when Discord is enabled: it is ~10 MB of an idle host.
    from bot.discord.run import DiscordRuntime
    from bot.observe import Observer
    from forge.webhooks import WebhookReceiver

log = logging.getLogger(__name__)


class PlansOnly:
    """``--auto-approve-plans`` on a headless host: plans are approved as they are posted,
    in the host's name, through the same revision-checked decision a human would make.
    Every other gate (a merge) still waits for a human."""

    def __init__(self, desk: Desk, plan_gate: str) -> None:
        self.desk = desk
        self.plan_gate = plan_gate

    async def request(self, gate: GateRequest) -> None:
        if gate.gate == self.plan_gate:
            await self.desk.request(gate)


async def warn_about_privileges(runtime: Runtime, console: Printer) -> None:
    """Say it loudly when crewline's own token could merge into a target by itself."""
    for project in runtime.config.projects:
        try:
            warning = await merge_power(
                runtime.services.gateway, project.path, project.target_branch
            )
        except ForgeError as error:
            log.warning("could not check the token's privileges on %s: %s", project.path, error)
            continue
        if warning is not None:
            log.warning("least privilege: %s", warning)
            console.print(f"WARNING: {warning}", style="bold red", markup=False)


async def serve(
    config: CrewlineConfig, secrets: Secrets, *, webhooks: bool, auto_approve_plans: bool = False
) -> None:
    console = PlainConsole()
    with_discord = webhooks and config.discord.enabled  # `crewline run`, not extra workers
    if with_discord:
        from bot.discord.run import discord_token

        discord_token(secrets, config.discord)  # a missing or malformed token fails first
    runtime = await build_runtime(config, secrets, notifier=ConsoleNotifier(console))
    if runtime.sandbox_warning:
        console.print(f"WARNING: {runtime.sandbox_warning}", style="bold red", markup=False)
    await warn_about_privileges(runtime, console)
    if auto_approve_plans:
        desk = ConsoleDesk.of(runtime.services, who=config.worker_id, console=console)
        runtime.services.desk = PlansOnly(desk, runtime.services.workflow.gate_state("plan").name)
    engine = runtime.engine
    observer: Observer | None = None
    if config.observability.enabled:
        # The listeners' modules only for a host that serves them.
        from bot.observe import Observer

        observer = Observer(config.observability, runtime.storage)
        try:
            url = await observer.start()
        except OSError:
            await runtime.close()
            raise
        console.print(f"observability: /metrics /healthz /readyz at {url}", markup=False)
    receiver: WebhookReceiver | None = None
    discord: DiscordRuntime | None = None
    if webhooks and config.webhook.enabled:
        if secrets.webhook_secret is None:
            if observer is not None:
                await observer.stop()
            await runtime.close()
            raise ConfigError(
                "environment",
                [
                    "webhook.enabled is true but CREWLINE_WEBHOOK_SECRET is not set: set it "
                    "to the GitLab webhook's secret token, or set webhook.enabled = false"
                ],
            )

        async def on_event(event: WebhookEvent) -> None:
            body = str(getattr(event, "body", ""))
            runtime.services.fleet.changed(event.project_path, event.target_iid, body)
            route_event(engine, discord.feed if discord is not None else None, event)

        from forge.webhooks import WebhookReceiver

        receiver = WebhookReceiver(secrets.webhook_secret, on_event, config.webhook)
        url = await receiver.start()
        console.print(f"webhooks: listening at {url}", markup=False)
    scheduler = build_scheduler(engine, runtime.client.budget, config.schedule, config.roles.flaky)
    if with_discord:
        from bot.discord.run import start_discord

        try:
            discord = await start_discord(runtime, secrets)
        except ConfigError:
            if receiver is not None:
                await receiver.stop()
            if observer is not None:
                await observer.stop()
            await runtime.close()
            raise
        discord.schedule(scheduler, config.schedule.digest_cron)
    scheduler.start()
    stop_on_sigterm()  # before saying we work: a supervisor may stop us the moment we do
    if observer is not None:
        observer.started = True
    console.print(
        f"crewline {config.worker_id}: working on {', '.join(p.path for p in config.projects)}",
        markup=False,
    )
    try:
        try:  # the fleet's shared state: pause, spend, learnings (docs/decisions/0027)
            await runtime.services.fleet.ensure()
        except ForgeError as error:
            log.warning("could not set up the control issues, reading them on the poll: %s", error)
        await engine.run_forever(config.schedule.poll_seconds)
    except asyncio.CancelledError:
        pass
    finally:
        scheduler.shutdown(wait=False)
        if discord is not None:
            await discord.close()
        if observer is not None:
            observer.started = False  # not ready while stopping: take no more traffic
        if receiver is not None:
            await receiver.stop()
        await runtime.close()
        if observer is not None:
            await observer.stop()
        console.print(f"crewline {config.worker_id}: stopped", markup=False)


class Wakeable(Protocol):
    def wake(self) -> None: ...


def route_event(engine: Engine, feed: Wakeable | None, event: WebhookEvent) -> None:
    """Wake what a webhook event concerns: the Discord feed for an issue's labels, the QA
    runs parked on a merge request's pipeline, and the engine for that issue alone (the
    gates for a 👍 or an Approve; the echo of our own write wakes nothing: roles/engine/events.py)."""
    if feed is not None and isinstance(event, IssueEvent):
        feed.wake()  # a label change: the status channel shows it
    if isinstance(event, PipelineEvent):
        engine.wake_parked(event.project_path, mr_iid=event.merge_request_iid, ref=event.ref)
    elif isinstance(event, MergeRequestEvent):
        engine.wake_parked(event.project_path, mr_iid=event.iid, ref=event.source_branch)
    route_to_engine(engine, event)


def stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, Kubernetes) stops like Ctrl-C does: the serving task
    is cancelled and cleans up. Without this Python dies at once, leaving agents and claims
    behind, and as PID 1 in a container it would ignore SIGTERM altogether."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
