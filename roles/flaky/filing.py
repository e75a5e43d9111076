"""One ``flaky-test`` issue per test, shared by every host, with the evidence on it.

The issue is found by its label and a hidden key in its description,
``<!-- crewline:flaky-test key=<digest> -->``, which counts only in an issue crewline's own
users wrote (the gateway strips markers from everyone else's text: forge/trust.py), so a
stranger cannot pre-empt or hijack a test's issue. Two hosts that detect the same test at
the same moment both file; each then lists the open issues with the key, the lowest iid
wins and the other closes itself pointing at the winner, as claim notes arbitrate; a
duplicate whose host died before it settled is closed by the next pass of any host.

The description carries the evidence (commits, pipelines, failed jobs, a failure excerpt,
first and last seen) and is rewritten only when the evidence changed. A test that was not
reproduced keeps its issue, closed at ``flaky::not-reproduced`` with its bar
``<!-- crewline:flaky-bar n=<commits> -->``: the detector reopens it only when that many
commits show mixed verdicts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from forge.sink import seal, unmark
from forge.types import Issue
from roles.flaky.detect import Candidate, flake_key
from roles.ports import IssueTracker
from workflow import Workflow, label_change, read_state

log = logging.getLogger(__name__)

_KEY = re.compile(r"<!-- crewline:flaky-test key=([0-9a-f]{16}) -->")
_BAR = re.compile(r"<!-- crewline:flaky-bar n=(\d+) -->")
_RERUN = re.compile(r"<!-- crewline:flaky-rerun pipeline=(\d+) job=(\S+) test=(\S+) -->")
_TITLE_MAX = 200
DIAGNOSIS_HEADING = "## Diagnosis"
CLOSING = "crewline reproduces it on its commit"
DUPLICATE_KEY = "flaky-duplicate"


def diagnosis_section(text: str) -> str:
    """The diagnosis the doctor added to a description (kept when the evidence is rewritten)."""
    start = text.find(DIAGNOSIS_HEADING)
    if start < 0:
        return ""
    ends = [i for i in (text.find(CLOSING, start), text.find("<!-- crewline:", start)) if i >= 0]
    return text[start : min(ends, default=len(text))].strip()


def key_marker(test: str) -> str:
    return f"<!-- crewline:flaky-test key={flake_key(test)} -->"


def bar_marker(bar: int) -> str:
    return f"<!-- crewline:flaky-bar n={bar} -->"


def rerun_marker(candidate: Candidate) -> str:
    job, test = quote(candidate.rerun_job, safe=""), quote(candidate.test, safe="")
    return (
        f"<!-- crewline:flaky-rerun pipeline={candidate.rerun_pipeline} job={job} test={test} -->"
    )


@dataclass(frozen=True)
class Rerun:
    """Where the doctor re-runs the test: its last failure's pipeline and job."""

    pipeline: int
    job: str
    test: str


def rerun_of(issue: Issue) -> Rerun | None:
    match = _RERUN.search(issue.description)
    if match is None or match.group(1) == "0":
        return None
    return Rerun(int(match.group(1)), unquote(match.group(2)), unquote(match.group(3)))


def bar_of(issue: Issue) -> int:
    match = _BAR.search(issue.description)
    return int(match.group(1)) if match else 1


@dataclass
class FilingReport:
    filed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class Filer:
    def __init__(self, gateway: IssueTracker, flaky: Workflow, label: str) -> None:
        self.gateway = gateway
        self.flaky = flaky
        self.label = label

    async def issues_by_key(self, project: str, state: str = "all") -> dict[str, list[Issue]]:
        found: dict[str, list[Issue]] = {}
        for issue in await self.gateway.list_issues(project, labels=[self.label], state=state):
            for match in set(_KEY.findall(issue.description)):
                found.setdefault(match, []).append(issue)
        return found

    def bars(self, known: dict[str, list[Issue]], tests: Iterable[str]) -> dict[str, int]:
        """The bar of each test whose issue was closed as not reproduced."""
        stopped = self.flaky.state("not-reproduced").label
        bars = {}
        for test in tests:
            closed = [i for i in known.get(flake_key(test), []) if stopped in i.labels]
            if closed:
                bars[test] = max(bar_of(issue) for issue in closed)
        return bars

    async def file(
        self, project: str, found: list[Candidate], known: dict[str, list[Issue]]
    ) -> FilingReport:
        report = FilingReport()
        stopped = self.flaky.state("not-reproduced").label
        for candidate in found:
            mine = known.get(candidate.digest, [])
            live = [issue for issue in mine if issue.state == "opened"]
            if live:
                issue, *later = sorted(live, key=lambda i: i.iid)
                for duplicate in later:  # its filer died before it settled
                    await self._close_duplicate(duplicate, issue)
                    report.duplicates.append(duplicate.ref)
                if await self._refresh(issue, candidate):
                    report.updated.append(issue.ref)
                continue
            parked = [issue for issue in mine if stopped in issue.labels]
            if parked:
                issue = max(parked, key=lambda i: i.iid)
                await self._reopen(issue, candidate)
                report.reopened.append(issue.ref)
                continue
            filed = await self._create(project, candidate)
            if await self._settle(project, candidate, filed):
                report.filed.append(filed.ref)
            else:
                report.duplicates.append(filed.ref)
        return report

    async def _create(self, project: str, candidate: Candidate) -> Issue:
        title = f"Flaky test {candidate.test}"
        if len(title) > _TITLE_MAX:
            title = title[: _TITLE_MAX - 1] + "…"
        labels = [self.label, self.flaky.state(self.flaky.entry).label]
        issue = await self.gateway.create_issue(
            project, title, description(candidate, bar=1), labels=labels
        )
        log.info(
            "flaky detector: filed %s for %s (%s mixed commits)",
            issue.ref,
            candidate.test,
            len(candidate.mixed_shas),
        )
        return issue

    async def _settle(self, project: str, candidate: Candidate, filed: Issue) -> bool:
        """True when ``filed`` is the test's one issue: the lowest open iid with its key."""
        rivals = (await self.issues_by_key(project, state="opened")).get(candidate.digest, [])
        winner = min([filed, *rivals], key=lambda i: i.iid)
        if winner.iid >= filed.iid:
            return True
        await self._close_duplicate(filed, winner)
        return False

    async def _close_duplicate(self, duplicate: Issue, winner: Issue) -> None:
        """Closed pointing at the winner, by the host that filed it right after filing or,
        should that host have died first, by any host's next pass (one note either way)."""
        await self.gateway.upsert_note(
            duplicate.project,
            duplicate.iid,
            DUPLICATE_KEY,
            f"Duplicate of #{winner.iid}: another crewline host filed this flaky test first.",
        )
        await self.gateway.update_issue(duplicate.project, duplicate.iid, state_event="close")
        log.info("flaky detector: %s closed as a duplicate of #%s", duplicate.ref, winner.iid)

    async def _refresh(self, issue: Issue, candidate: Candidate) -> bool:
        text = description(
            candidate, bar=bar_of(issue), diagnosis=diagnosis_section(issue.description)
        )
        if unmark(text) == issue.description:  # the text as GitLab keeps it
            return False
        await self.gateway.update_issue(issue.project, issue.iid, description=text)
        return True

    async def _reopen(self, issue: Issue, candidate: Candidate) -> None:
        change = label_change(self.flaky, issue.labels, self.flaky.entry)
        await self.gateway.update_issue(
            issue.project,
            issue.iid,
            add_labels=change.add,
            remove_labels=change.remove,
            state_event="reopen",
            description=description(
                candidate, bar=bar_of(issue), diagnosis=diagnosis_section(issue.description)
            ),
        )
        log.info("flaky detector: %s reopened, %s seen above its bar", issue.ref, candidate.test)


def stage_of(flaky: Workflow, issue: Issue) -> str | None:
    state = read_state(flaky, issue.labels).state
    return state.name if state else None


def description(candidate: Candidate, *, bar: int, diagnosis: str = "") -> str:
    shas = ", ".join(f"`{sha[:12]}`" for sha in candidate.mixed_shas) or "none yet"
    pipelines = ", ".join(f"#{p}" for p in candidate.pipelines)
    jobs = ", ".join(str(j) for j in candidate.failed_jobs) or "none"
    why = (
        "QA excused it: it failed, then passed when its job was retried."
        if candidate.excused and not candidate.mixed_shas
        else "Its verdicts on one commit include both a pass and a failure."
    )
    lines = [
        f"The test `{candidate.test}` looks flaky. {why}",
        "",
        "## Evidence",
        "",
        f"- commits with mixed verdicts: {shas}",
        f"- pipelines: {pipelines or 'none'}",
        f"- failed jobs: {jobs}",
        f"- runs seen: {candidate.runs}, failed: {candidate.failures}",
        f"- first seen: {candidate.first_seen or 'unknown'}; last seen: "
        f"{candidate.last_seen or 'unknown'}",
        f"- fingerprint: `{candidate.fingerprint}`",
    ]
    if candidate.excerpt:
        lines += ["", "Failure excerpt:", "", "```", candidate.excerpt.replace("```", "'''"), "```"]
    if diagnosis:
        lines += ["", diagnosis]
    lines += [
        "",
        f"{CLOSING}, diagnoses the cause, and proves a fix by N "
        "green runs out of N before the merge, which stays a human's decision.",
        "",
        seal(key_marker(candidate.test)),
        seal(bar_marker(bar)),
        seal(rerun_marker(candidate)),
    ]
    return "\n".join(lines)
