"""APScheduler jobs: the poll safety net, the janitor and the flaky-test doctor.

Webhooks wake the engine at once; the poll catches whatever a lost webhook missed. Each
job runs one instance at a time (``max_instances=1``), missed runs collapse into one
(``coalesce=True``), and a run late by up to one interval still happens
(``misfire_grace_time``) rather than being dropped after a busy moment.

The poll and the janitor are housekeeping: when GitLab's rate budget runs short
(:mod:`forge.rate`) they skip ticks, up to eight in a row, before any run in flight is slowed
(docs/decisions/0029). Each poll also leaves this host's rate figures in its database for
``crewline status``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.settings import ScheduleSettings
from forge.client import ForgeError
from forge.rate import RateBudget
from roles.engine.janitor import JanitorLimits, sweep
from roles.engine.loop import Engine
from roles.flaky.doctor import Doctor
from roles.settings import FlakyDoctorSettings
from storage import StorageError

log = logging.getLogger(__name__)

RATE_KEY = "gitlab:rate"  # this host's last RateSnapshot, for `crewline status`


class Paced:
    """Whether a housekeeping job's tick should run: always while the budget is ample, and
    once every ``slowdown()`` intervals while it is short."""

    def __init__(
        self,
        name: str,
        budget: RateBudget,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._budget = budget
        self._interval = interval
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        factor = self._budget.slowdown()
        # Half an interval of slack: ticks come every interval, give or take the loop's jitter.
        waited = None if self._last is None else now - self._last
        if factor > 1 and waited is not None and waited < (factor - 0.5) * self._interval:
            log.info("%s skipped: GitLab rate budget short (every %.0fx)", self.name, factor)
            return False
        self._last = now
        return True


def build_scheduler(
    engine: Engine, budget: RateBudget, schedule: ScheduleSettings, doctor: FlakyDoctorSettings
) -> AsyncIOScheduler:
    """``budget``: the bot identity's GitLab rate budget, which paces the poll and the janitor."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    limits = JanitorLimits(
        stuck_after=schedule.stuck_after_seconds,
        stuck_by_state=schedule.stuck_after_by_state,
        answer_timeout=schedule.answer_timeout_seconds,
    )

    poll_pace = Paced("poll", budget, schedule.poll_seconds)
    janitor_pace = Paced("janitor", budget, schedule.janitor_seconds)

    async def poll() -> None:
        if poll_pace.due():
            engine.wake()
        try:
            await engine.services.storage.settings.set_json(
                RATE_KEY, {**asdict(budget.snapshot()), "at": time.time()}
            )
        except StorageError as error:
            log.warning("could not record the GitLab rate for `crewline status`: %s", error)

    async def janitor() -> None:
        if not janitor_pace.due():
            return
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
