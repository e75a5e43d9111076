"""The detector's pass over a project: history, candidates, one issue per test.

The first step of the doctor's pass (``roles.flaky.doctor``, on ``schedule.flaky_cron``).
It reads the project's recent CI history (``history``), adds the tests QA excused on this
host, finds the candidates above each test's bar (``detect``) and files or refreshes their
issues (``filing``). Everything a second host needs is on GitLab: the issues, their
evidence and their bars.
"""

from __future__ import annotations

import logging

from forge.types import Issue
from roles.context import Services
from roles.flaky.detect import candidates, flake_key
from roles.flaky.excused import flaky_key, forget_flake
from roles.flaky.filing import Filer, FilingReport
from roles.flaky.history import HistoryReader
from roles.settings import FlakyDoctorSettings
from workflow import flaky_workflow

log = logging.getLogger(__name__)


class Detector:
    def __init__(self, services: Services, settings: FlakyDoctorSettings) -> None:
        self.services = services
        self.settings = settings
        self.reader = HistoryReader(
            services.gateway.ci, junit_path=settings.junit_path, window=settings.window
        )
        self.filer = Filer(services.gateway, flaky_workflow(), settings.label)

    async def scan_project(self, project: str) -> FilingReport:
        verdicts = await self.reader.verdicts(project)
        excused: list[str] = await self.services.storage.settings.get_json(flaky_key(project), [])
        known = await self.filer.issues_by_key(project)
        tests = {v.test for v in verdicts} | set(excused)
        found = candidates(verdicts, excused=excused, bars=self.filer.bars(known, tests))
        report = await self.filer.file(project, found, known)
        await self._forget_fixed(project, excused, known)
        log.info(
            "flaky detector %s: %s verdicts, %s candidates, filed %s, updated %s, reopened %s",
            project,
            len(verdicts),
            len(found),
            report.filed,
            report.updated,
            report.reopened,
        )
        return report

    async def _forget_fixed(
        self, project: str, excused: list[str], known: dict[str, list[Issue]]
    ) -> None:
        """A test whose fix was validated and whose issue is closed is no longer excused by
        QA: a failure fails again."""
        validated = self.filer.flaky.state("validated").label
        for test in excused:
            mine = known.get(flake_key(test), [])
            if (
                mine
                and not any(i.state == "opened" for i in mine)
                and any(validated in i.labels for i in mine)
            ):
                await forget_flake(self.services.storage.settings, project, test)
                log.info("flaky detector %s: %s fixed, QA stops excusing it", project, test)
