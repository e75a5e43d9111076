"""`crewline run` and `crewline worker`: the engine, its scheduler, and (for run) the
webhook receiver, until interrupted."""

from __future__ import annotations

import asyncio
import logging

from rich.console import Console

from bot.app import build_runtime
from bot.config import ConfigError, CrewlineConfig, Secrets
from bot.console import ConsoleNotifier
from bot.scheduler import build_scheduler
from forge.webhooks import WebhookReceiver
from forge.webhooks.events import WebhookEvent

log = logging.getLogger(__name__)


async def serve(config: CrewlineConfig, secrets: Secrets, *, webhooks: bool) -> None:
    console = Console(highlight=False)
    runtime = await build_runtime(config, secrets, notifier=ConsoleNotifier(console))
    engine = runtime.engine
    receiver: WebhookReceiver | None = None
    if webhooks and config.webhook.enabled:
        if secrets.webhook_secret is None:
            await runtime.close()
            raise ConfigError(
                "environment",
                [
                    "webhook.enabled is true but CREWLINE_WEBHOOK_SECRET is not set: set it "
                    "to the GitLab webhook's secret token, or set webhook.enabled = false"
                ],
            )

        async def on_event(event: WebhookEvent) -> None:
            engine.wake()

        receiver = WebhookReceiver(secrets.webhook_secret, on_event, config.webhook)
        url = await receiver.start()
        console.print(f"webhooks: listening at {url}", markup=False)
    scheduler = build_scheduler(engine, config.schedule)
    scheduler.start()
    console.print(
        f"crewline {config.worker_id}: working on {', '.join(p.path for p in config.projects)}",
        markup=False,
    )
    try:
        await engine.run_forever(config.schedule.poll_seconds)
    except asyncio.CancelledError:
        pass
    finally:
        scheduler.shutdown(wait=False)
        if receiver is not None:
            await receiver.stop()
        await runtime.close()
