"""APScheduler jobs: the poll safety net, the janitor and the flaky-test doctor.

Webhooks wake the engine at once; the poll catches whatever a lost webhook missed. Each
job runs one instance at a time (``max_instances=1``), missed runs collapse into one
(``coalesce=True``), and a run late by up to one interval still happens
(``misfire_grace_time``) rather than being dropped after a busy moment.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.settings import ScheduleSettings
from forge.client import ForgeError
from roles.engine import Engine
from roles.flaky.doctor import Doctor
from roles.janitor import JanitorLimits, sweep
from roles.settings import FlakyDoctorSettings

log = logging.getLogger(__name__)


def build_scheduler(
    engine: Engine, schedule: ScheduleSettings, doctor: FlakyDoctorSettings
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    limits = JanitorLimits(
        stuck_after=schedule.stuck_after_seconds,
        stuck_by_state=schedule.stuck_after_by_state,
        answer_timeout=schedule.answer_timeout_seconds,
    )

    async def poll() -> None:
        engine.wake()

    async def janitor() -> None:
        try:
            report = await sweep(engine.services, busy=engine.inflight_keys(), limits=limits)
        except ForgeError as error:
            log.warning("janitor pass failed, next pass retries: %s", error)
            return
        moved = [name for name, refs in vars(report).items() if refs]
        if moved:
            log.info("janitor: %s", {name: getattr(report, name) for name in moved})

    flaky_doctor = Doctor(engine.services, doctor)

    async def flaky() -> None:
        try:
            passes = {p: await flaky_doctor.run_pass(p) for p in engine.services.projects}
        except ForgeError as error:
            log.warning("flaky-test doctor failed, its next run retries: %s", error)
            return
        for project, done in passes.items():
            if any(vars(done).values()):
                log.info("flaky-test doctor %s: %s", project, vars(done))

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
    if doctor.enabled:
        scheduler.add_job(
            flaky,
            CronTrigger.from_crontab(schedule.flaky_cron),
            id="flaky",
            misfire_grace_time=3600,
            **common,
        )
    return scheduler
