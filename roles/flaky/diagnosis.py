"""The diagnostician's strict answer, its prompt, and what its verdict does to the issue.

The agent reads the failing commit (a read-only worktree), the job logs, the test's source
and its recent changes, and must answer in exactly this form::

    CLASS: <one of the taxonomy's slugs>
    CONFIDENCE: <a number from 0 to 1>
    EVIDENCE:
    - <a line from the logs or the source that shows the cause>
    FIX: <the change that removes the cause>

The class becomes the scoped label ``flaky-test::<class>`` (one per issue: GitLab keeps one
label of a scope). ``unknown``, or a confidence under the threshold, sends the issue to a
human (``flaky::needs-human``) instead of the fixer: guessing at a cause is how a retry gets
merged. A malformed answer raises :class:`DiagnosisError` naming what is wrong, which the
caller gives back to the agent once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forge.sink import seal_all
from forge.types import Issue
from roles.flaky.filing import CLOSING, DIAGNOSIS_HEADING, diagnosis_section
from roles.flaky.runs import live_note
from roles.ports import IssueTracker
from roles.untrusted import Fence
from workflow import Workflow, label_change

TAXONOMY: dict[str, str] = {
    "order-dependency": "order dependency between tests",
    "shared-state-leak": "shared state leaking between tests",
    "time-and-timezone": "time and time zone",
    "unseeded-randomness": "randomness without a seed",
    "concurrency-or-race": "concurrency or race",
    "network-or-external-service": "network or an external service",
    "resource-or-timeout": "resource or timeout",
    "environment": "environment",
    "unknown": "unknown",
}
LABEL_SCOPE = "flaky-test"
MIN_CONFIDENCE = 0.6
DIAGNOSIS_KEY = "flaky-diagnosis"

_FIELD = re.compile(r"^(CLASS|CONFIDENCE|EVIDENCE|FIX):[ \t]*(.*)$", re.M)


class DiagnosisError(ValueError):
    """The answer is not in the required form; the message says what to correct."""


@dataclass(frozen=True)
class Diagnosis:
    cause: str
    confidence: float
    evidence: tuple[str, ...]
    fix: str

    @property
    def label(self) -> str:
        return f"{LABEL_SCOPE}::{self.cause}"

    @property
    def needs_human(self) -> bool:
        return self.cause == "unknown" or self.confidence < MIN_CONFIDENCE

    def note(self) -> str:
        lines = [
            f"**Diagnosis: {TAXONOMY[self.cause]}** (confidence {self.confidence:.2f})",
            "",
            "Evidence:",
            *(f"- `{_unticked(line)}`" for line in self.evidence),
            "",
            f"Proposed fix: {self.fix}",
        ]
        if self.needs_human:
            lines += [
                "",
                "The cause is not clear enough to hand to the fixer: a human decides "
                "(name the cause in a reply, or close the issue).",
            ]
        return "\n".join(lines)


def _unticked(line: str) -> str:
    return line.replace("`", "'")


def parse(answer: str) -> Diagnosis:
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(answer))
    for n, match in enumerate(matches):
        if match.group(1) in fields:
            raise DiagnosisError(f"{match.group(1)} appears twice; give each field once")
        end = matches[n + 1].start() if n + 1 < len(matches) else len(answer)
        fields[match.group(1)] = (match.group(2) + answer[match.end() : end]).strip()
    missing = [name for name in ("CLASS", "CONFIDENCE", "EVIDENCE", "FIX") if name not in fields]
    if missing:
        raise DiagnosisError(f"missing {', '.join(missing)}: answer with all four fields")
    cause = fields["CLASS"].strip().lower()
    if cause not in TAXONOMY:
        raise DiagnosisError(f"CLASS {cause!r} is not one of: {', '.join(TAXONOMY)}")
    try:
        confidence = float(fields["CONFIDENCE"])
    except ValueError:
        raise DiagnosisError("CONFIDENCE must be a number from 0 to 1") from None
    if not 0.0 <= confidence <= 1.0:
        raise DiagnosisError(f"CONFIDENCE {confidence} is outside 0..1")
    evidence = tuple(
        line.lstrip("-* ").strip() for line in fields["EVIDENCE"].splitlines() if line.strip()
    )
    if not evidence and cause != "unknown":
        raise DiagnosisError("EVIDENCE is empty: quote the lines that show the cause")
    if not fields["FIX"] and cause != "unknown":
        raise DiagnosisError("FIX is empty: say what change removes the cause")
    return Diagnosis(cause, confidence, evidence, fields["FIX"])


def prompt(test: str, logs: str, source: str, changes: str) -> str:
    """The diagnostician's prompt; the logs, source and history are fenced as data."""
    fence = Fence([test, logs, source, changes])
    classes = "\n".join(f"- {slug}: {text}" for slug, text in TAXONOMY.items())
    return "\n".join(
        [
            "You diagnose a flaky test: it passes and fails on the same commit. Do not change "
            "any file. Find the root cause and answer in exactly this form:",
            "",
            "CLASS: <one slug from the list below>",
            "CONFIDENCE: <a number from 0 to 1>",
            "EVIDENCE:",
            "- <a line from the logs or the source that shows the cause>",
            "FIX: <the change that removes the cause; never a retry, skip, quarantine, "
            "looser assertion or longer timeout unless the cause is a resource or timeout>",
            "",
            "Classes:",
            classes,
            "",
            fence.notice(),
            "",
            f"The test: {fence.inline(test)}",
            "",
            fence.wrap(logs, "failing job logs"),
            "",
            fence.wrap(source, "the test's source"),
            "",
            fence.wrap(changes, "recent changes to the test"),
        ]
    )


async def record(
    gateway: IssueTracker,
    flaky: Workflow,
    issue: Issue,
    found: Diagnosis,
    *,
    fixer_label: str | None = None,
) -> str:
    """Post the diagnosis, label its class, and move the issue on; the state it went to.
    With ``fixer_label`` (the ordinary workflow's entry state), a clear diagnosis is handed
    to the fixer in the same update: the diagnosis joins the description and the issue
    enters the ordinary workflow, so no crash can leave it at ``flaky::fixing`` unfixed."""
    await live_note(gateway, issue.project, issue.iid, DIAGNOSIS_KEY, found.note())
    fresh = await gateway.get_issue(issue.project, issue.iid)
    target = "needs-human" if found.needs_human else "fixing"
    change = label_change(flaky, fresh.labels, target)
    stale = [label for label in fresh.labels if label.startswith(f"{LABEL_SCOPE}::")]
    handed_on = [fixer_label] if target == "fixing" and fixer_label is not None else []
    await gateway.update_issue(
        issue.project,
        issue.iid,
        add_labels=[*change.add, found.label, *handed_on],
        remove_labels=[*change.remove, *(label for label in stale if label != found.label)],
        # crewline's own description (read through Trust): its markers sealed again to be
        # kept; the agent's diagnosis added to it is not sealed (forge/sink.py).
        description=with_diagnosis(seal_all(fresh.description), found) if handed_on else None,
    )
    return target


def with_diagnosis(text: str, found: Diagnosis) -> str:
    """The issue's description with the diagnosis for the fixer (the PM plans from it),
    before the closing words; unchanged when it has one already."""
    if diagnosis_section(text):
        return text
    evidence = "\n".join(f"- `{line}`" for line in found.evidence)
    section = (
        f"{DIAGNOSIS_HEADING}\n\nCause: {found.cause} (confidence {found.confidence:.2f})."
        f"\n\n{evidence}\n\nFix: {found.fix}\n\nRemove the cause; a retry, skip, "
        "quarantine, looser assertion or longer timeout is refused before review."
    )
    head, closing, tail = text.partition(CLOSING)
    return f"{head}{section}\n\n{closing}{tail}" if closing else f"{text}\n\n{section}"
