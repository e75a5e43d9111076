"""APScheduler jobs: the poll safety net and the janitor.

Webhooks wake the engine at once; the poll catches whatever a lost webhook missed. Each
job runs one instance at a time (``max_instances=1``), missed runs collapse into one
(``coalesce=True``), and a run late by up to one interval still happens
(``misfire_grace_time``) rather than being dropped after a busy moment.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.settings import ScheduleSettings
from forge.client import ForgeError
from roles.engine import Engine
from roles.janitor import sweep

log = logging.getLogger(__name__)


def build_scheduler(engine: Engine, schedule: ScheduleSettings) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")

    async def poll() -> None:
        engine.wake()

    async def janitor() -> None:
        try:
            report = await sweep(engine.services, busy=engine.inflight_keys())
        except ForgeError as error:
            log.warning("janitor pass failed, next pass retries: %s", error)
            return
        if report.requeued or report.failed or report.repaired:
            log.info(
                "janitor: requeued=%s failed=%s repaired=%s",
                report.requeued,
                report.failed,
                report.repaired,
            )

    common = {"max_instances": 1, "coalesce": True}
    scheduler.add_job(
        poll,
        "interval",
        seconds=schedule.poll_seconds,
        id="poll",
        misfire_grace_time=max(1, int(schedule.poll_seconds)),
        **common,
    )
    scheduler.add_job(
        janitor,
        "interval",
        seconds=schedule.janitor_seconds,
        id="janitor",
        misfire_grace_time=max(1, int(schedule.janitor_seconds)),
        **common,
    )
    return scheduler
