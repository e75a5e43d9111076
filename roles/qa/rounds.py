"""dev<->QA round trips: how often QA has sent the work back to the developer, read from
crewline's own notes on the issue (GitLab is the store every host shares, so every host
counts the same), and the history a blocked issue carries once the bound is reached.

QA's send-back note is keyed (``qa-<attempt>:outcome``) and carries a hidden marker naming the
pipeline and head it judged. Round trips are counted per pipeline: a note posted twice for
one pipeline (a run re-queued after posting it but before moving the issue) is one trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forge.types import Note
from roles.mr_link import note_key

_SENT_BACK = re.compile(r"<!-- crewline:qa-sent-back pipeline=(\d+) sha=([0-9a-f]{7,40}) -->")
_QA_OUTCOME = re.compile(r"^qa-\d+:outcome$")
_TEXT_BLOCK = re.compile(r"```text\n(.*?)\n```", re.DOTALL)
HISTORY_LINES = 12  # of each round's log excerpt


def sent_back_marker(pipeline_id: int, sha: str) -> str:
    return f"<!-- crewline:qa-sent-back pipeline={pipeline_id} sha={sha} -->"


@dataclass(frozen=True)
class Round:
    pipeline: int
    sha: str
    summary: str  # the first line of the send-back: pipeline, head, failed jobs and tests
    excerpt: str  # the end of the first failed job's log


def round_of(body: str, pipeline: int, sha: str) -> Round:
    summary = body.strip().splitlines()[0] if body.strip() else ""
    summary = summary.split(" Back to the developer", 1)[0]  # that round's verdict, not news
    block = _TEXT_BLOCK.search(body)
    lines = block.group(1).splitlines()[-HISTORY_LINES:] if block else []
    return Round(pipeline, sha, summary, "\n".join(lines))


def earlier_rounds(notes: list[Note], *, current_pipeline: int) -> list[Round]:
    """QA's send-backs before this one, oldest first, one per pipeline."""
    found: dict[int, Round] = {}
    for note in notes:
        key = note_key(note)
        match = _SENT_BACK.search(note.body)
        if key is None or not _QA_OUTCOME.match(key) or match is None:
            continue
        pipeline = int(match.group(1))
        if pipeline != current_pipeline and pipeline not in found:
            found[pipeline] = round_of(note.body, pipeline, match.group(2))
    return list(found.values())


def history(rounds: list[Round], last: Round, limit: int) -> str:
    """The blocked note: why, then each round's pipeline and the end of its failure log."""
    parts = [
        f"Blocked: the pipeline is still red after {len(rounds)} round trip(s) between the "
        f"developer and QA (`roles.qa.max_round_trips` = {limit}). A human should look at "
        "the failure before another attempt; each round's pipeline and log excerpt:"
    ]
    for number, one in enumerate([*rounds, last], start=1):
        text = f"**Round {number}**: {one.summary}"
        if one.excerpt:
            text += f"\n\n```text\n{one.excerpt}\n```"
        parts.append(text)
    return "\n\n".join(parts)
