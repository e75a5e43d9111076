"""The flaky-test doctor: every test QA recorded as flaky becomes a goal to fix it.

QA excuses a test that failed and then passed on a retry of its job (``flaky_key``), so a
flake never sends good work back to the developer. Left at that, a flake is tolerated
forever. On ``schedule.flaky_cron`` the doctor files one issue per recorded flaky test at
the workflow's entry state, with the evidence (pipelines, the issues QA was checking) and
what a fix must and must not do, so the fix is planned, approved, validated, reviewed and
QA'd like any other change. When that issue is closed (the fix merged), the test is taken
off the record: QA stops excusing it, and a new flake files a new goal.

Each host records the flakes its own QA runs saw, so two hosts may file for one test at
the same moment. The hidden marker ``<!-- crewline:flaky test=<digest> -->`` finds an
existing goal before filing; after filing, the lowest iid wins and a later duplicate
closes itself with a note, as claim notes arbitrate (SPEC §3).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from forge.gateway import Gateway
from forge.types import Issue
from roles.context import Services
from roles.settings import FlakyDoctorSettings
from storage import SettingsStore

log = logging.getLogger(__name__)

_MARKER = re.compile(r"<!-- crewline:flaky test=([0-9a-f]{16}) -->")
_KEPT = 10  # pipelines and issue refs kept as evidence per test
_TITLE_MAX = 200  # GitLab's limit is 255; a test id can be long


def flaky_key(project: str) -> str:
    """Where a project's excused test names live: QA retries these instead of sending back."""
    return f"flaky:{project}"


def sightings_key(project: str) -> str:
    """Where the evidence behind each excused test lives, for the doctor's goals."""
    return f"flaky-seen:{project}"


def flake_digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def marker(name: str) -> str:
    return f"<!-- crewline:flaky test={flake_digest(name)} -->"


async def record_flakes(
    kv: SettingsStore, project: str, names: Sequence[str], *, pipeline: int, ref: str, at: str
) -> None:
    """QA saw ``names`` fail then pass on retry in ``pipeline`` while checking ``ref``.
    Recording the same pipeline again (a resumed run) counts it once."""

    def excuse(known: list[str]) -> list[str]:
        return sorted({*known, *names})

    def witness(seen: dict[str, Any]) -> dict[str, Any]:
        for name in names:
            entry = seen.setdefault(name, {"pipelines": [], "refs": [], "count": 0})
            if pipeline not in entry["pipelines"]:
                entry["count"] += 1
                entry["pipelines"] = [*entry["pipelines"], pipeline][-_KEPT:]
            if ref not in entry["refs"]:
                entry["refs"] = [*entry["refs"], ref][-_KEPT:]
            entry["last_seen"] = at
        return seen

    await kv.update_json(flaky_key(project), excuse, [])
    await kv.update_json(sightings_key(project), witness, {})


async def forget_flake(kv: SettingsStore, project: str, name: str) -> None:
    """``name`` is fixed: QA stops excusing it, and its evidence is dropped."""
    await kv.update_json(flaky_key(project), lambda known: [n for n in known if n != name], [])
    await kv.update_json(
        sightings_key(project), lambda seen: {k: v for k, v in seen.items() if k != name}, {}
    )


@dataclass
class DoctorReport:
    filed: list[str] = field(default_factory=list)  # issue refs of new goals
    duplicates: list[str] = field(default_factory=list)  # goals this host closed as duplicates
    forgotten: list[str] = field(default_factory=list)  # tests whose fix was merged


async def scan(services: Services, settings: FlakyDoctorSettings) -> DoctorReport:
    """One doctor pass over every project of this host."""
    report = DoctorReport()
    if not settings.enabled:
        return report
    kv = services.storage.settings
    for project in services.projects:
        seen: dict[str, Any] = await kv.get_json(sightings_key(project), {})
        if not seen:
            continue  # nothing recorded here: no GitLab call
        goals = await _goals_by_test(services.gateway, project, settings.label)
        for name, entry in sorted(seen.items()):
            mine = goals.get(flake_digest(name), [])
            if any(goal.state == "opened" for goal in mine):
                continue
            closed = [goal.updated_at for goal in mine]
            if closed and _instant(entry["last_seen"]) <= max(map(_instant, closed)):
                await forget_flake(kv, project, name)
                report.forgotten.append(name)
                log.info("flaky doctor: fix merged, test no longer excused: %s %s", project, name)
                continue
            if entry["count"] < settings.min_sightings:
                continue
            filed = await file_goal(services, project, name, entry, settings.label)
            winner = await settle(services.gateway, project, name, filed, settings.label)
            (report.filed if winner else report.duplicates).append(filed.ref)
    return report


async def file_goal(
    services: Services, project: str, name: str, entry: dict[str, Any], label: str
) -> Issue:
    """File the goal to fix ``name`` at the workflow's entry state."""
    entry_label = services.workflow.state(services.workflow.entry).label
    title = f"Fix flaky test {name}"
    if len(title) > _TITLE_MAX:
        title = title[: _TITLE_MAX - 1] + "…"
    issue = await services.gateway.create_issue(
        project, title, goal_description(name, entry), labels=[entry_label, label]
    )
    log.info("flaky doctor: filed %s for %s (seen %s times)", issue.ref, name, entry["count"])
    return issue


async def settle(gateway: Gateway, project: str, name: str, filed: Issue, label: str) -> bool:
    """True if ``filed`` is the one goal for ``name``: the lowest open iid wins; a later
    duplicate (another host filed at the same moment) closes itself, pointing at the winner."""
    open_goals = (await _goals_by_test(gateway, project, label, state="opened")).get(
        flake_digest(name), [filed]
    )
    winner = min(open_goals, key=lambda goal: goal.iid)
    if winner.iid >= filed.iid:
        return True
    await gateway.post_note(
        project,
        filed.iid,
        f"Duplicate of #{winner.iid}: another crewline host filed the same flaky test first.",
    )
    await gateway.update_issue(project, filed.iid, state_event="close")
    log.info("flaky doctor: %s closed as a duplicate of #%s", filed.ref, winner.iid)
    return False


def goal_description(name: str, entry: dict[str, Any]) -> str:
    pipelines = ", ".join(f"#{number}" for number in entry["pipelines"])
    refs = ", ".join(entry["refs"])
    times = "once" if entry["count"] == 1 else f"{entry['count']} times"
    return "\n".join(
        [
            f"The test `{name}` is flaky in CI: it failed, then passed when QA retried its "
            f"job, {times} (pipelines {pipelines}; QA was checking {refs}). QA retries it "
            "instead of sending work back, so today it is tolerated, not fixed.",
            "",
            "Find out why it is nondeterministic (test order, shared state or files, time and "
            "time zones, randomness without a seed, concurrency and timeouts, network or "
            "other outside services) and make it deterministic. Do not retry, skip, "
            "quarantine or loosen the test to make it pass.",
            "",
            "## Acceptance criteria",
            "",
            "- The merge request names the cause and how the fix removes it.",
            "- The test passes when run many times in a row, on its own and with the rest of "
            "its suite.",
            "",
            "When this issue is closed, QA stops retrying the test: a failure fails.",
            "",
            marker(name),
        ]
    )


async def _goals_by_test(
    gateway: Gateway, project: str, label: str, state: str = "all"
) -> dict[str, list[Issue]]:
    goals: dict[str, list[Issue]] = {}
    for issue in await gateway.list_issues(project, labels=[label], state=state):
        for digest in _digests(issue.description):
            goals.setdefault(digest, []).append(issue)
    return goals


def _digests(description: str) -> Iterable[str]:
    return {match.group(1) for match in _MARKER.finditer(description)}


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
