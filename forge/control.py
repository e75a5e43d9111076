"""The crewline control issue: the state every host of a fleet shares, kept in GitLab.

One issue per project, filed by crewline's bot user, labelled ``crewline::control``, with a
hidden ``<!-- crewline:control -->`` marker in its description and a keyed anchor note
(``control:anchor``). Its notes, each keyed and edited in place:

- ``control:pause:all`` and ``control:pause:project``: whether claiming is paused on the
  project because every project was paused, or this one was (``<!-- crewline:pause
  paused=1 -->``). A project is paused while either says so.
- ``control:spend:<worker>:<day>``: what one host's agents spent on the project that UTC day
  (``<!-- crewline:spend worker=... day=... tokens=... usd=... -->``).

It is found by what no one else can forge: among the issues crewline's bot user filed
(GitLab's ``author_id`` filter, whatever their labels or state), the one whose description
carries the marker as crewline wrote it (forge/trust.py drops a description anyone else
edited), or else the one carrying crewline's own anchor note. So removing the label,
closing the issue or editing its description neither lifts a pause nor resets spend nor
makes crewline file a second issue, and a stranger's issue with the label is never taken
for it. Each refresh puts back a removed label and an edited description; a closed control
issue keeps working (crewline does not reopen it). Only crewline's notes count (the
gateway's trust filter strips every other author's markers). Two hosts creating the issue
at once: the lowest iid wins and the other host closes its own copy. Decision records 0027
and 0034.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import gitlab

from forge.client import ForgeNotFound
from forge.gateway import note_marker
from forge.labels import ensure_label
from forge.ports import IssueTracker
from forge.sink import seal
from forge.trust import carries_marker
from forge.types import Issue, Note

CONTROL_LABEL = "crewline::control"
CONTROL_MARKER = "<!-- crewline:control -->"
CONTROL_TITLE = "crewline control"
ANCHOR_KEY = "control:anchor"
CONTROL_COLOR = "#303030"
CONTROL_DESCRIPTION = "crewline: the fleet's shared switches and spend (edited by crewline)"
PAUSE_ALL = "all"  # paused because every project was paused
PAUSE_PROJECT = "project"  # paused on this project alone

_PAUSE = re.compile(r"<!-- crewline:pause paused=(?P<paused>[01]) -->")
_SPEND = re.compile(
    r"<!-- crewline:spend worker=(?P<worker>\S+) day=(?P<day>\d{4}-\d{2}-\d{2}) "
    r"tokens=(?P<tokens>\d+) usd=(?P<usd>\d+(?:\.\d+)?) -->"
)
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]")
_CONTROL_NOTE = note_marker(ANCHOR_KEY)
CONTROL_BODY = (
    "crewline keeps the fleet's shared state here: pause and resume, and each "
    "host's spend per day. Leave this issue open; crewline edits its notes.\n\n"
    f"{seal(CONTROL_MARKER)}"
)
ANCHOR_BODY = "crewline's control issue for this project (this note tells crewline so)."


def pause_note_key(scope: str) -> str:
    return f"control:pause:{scope}"


def spend_note_key(worker: str, day: str) -> str:
    # The worker id is kept whole in the spend marker; the key only has to be unique.
    return f"control:spend:{_UNSAFE_KEY.sub('-', worker)}:{day}"


@dataclass(frozen=True)
class HostSpend:
    worker: str
    day: str  # YYYY-MM-DD, UTC
    tokens: int
    usd: float
    note_id: int


@dataclass(frozen=True)
class ControlView:
    """What a project's control issue says, as of its ``updated_at``."""

    project: str
    iid: int | None  # None: the project has no control issue yet (nothing paused, no spend)
    updated_at: str = ""
    pause: dict[str, bool] = field(default_factory=dict)  # by scope
    pause_notes: dict[str, int] = field(default_factory=dict)  # note id by scope
    spend: tuple[HostSpend, ...] = ()
    anchored: bool = False  # crewline's anchor note is on it
    damaged: bool = False  # its label or its description is not as crewline left them

    @property
    def paused(self) -> bool:
        return any(self.pause.values())

    def spend_on(self, day: str) -> list[HostSpend]:
        return [entry for entry in self.spend if entry.day == day]


def parse_view(project: str, issue: Issue, notes: Iterable[Note]) -> ControlView:
    """The control issue's state from its notes; notes not by crewline are ignored."""
    pause: dict[str, bool] = {}
    pause_notes: dict[str, int] = {}
    spend: list[HostSpend] = []
    anchored = False
    for note in notes:
        if not note.by_crewline or note.system:
            continue
        anchored = anchored or _CONTROL_NOTE in note.body
        for scope in (PAUSE_ALL, PAUSE_PROJECT):
            if note_marker(pause_note_key(scope)) in note.body and scope not in pause_notes:
                found = _PAUSE.search(note.body)
                pause[scope] = found is not None and found.group("paused") == "1"
                pause_notes[scope] = note.id
        entry = _SPEND.search(note.body)
        if entry is not None:
            spend.append(
                HostSpend(
                    worker=entry.group("worker"),
                    day=entry.group("day"),
                    tokens=int(entry.group("tokens")),
                    usd=float(entry.group("usd")),
                    note_id=note.id,
                )
            )
    damaged = CONTROL_LABEL not in issue.labels or CONTROL_MARKER not in issue.description
    return ControlView(
        project, issue.iid, issue.updated_at, pause, pause_notes, tuple(spend), anchored, damaged
    )


def pause_body(project: str, scope: str, paused: bool, who: str, when: str) -> str:
    what = "every project" if scope == PAUSE_ALL else project
    if paused:
        text = f"⏸ crewline is paused on {what}: no host claims new work (by {who} at {when})."
    else:
        text = f"▶ crewline is not paused on {what} (resumed by {who} at {when})."
    return f"{text}\n\n{seal(f'<!-- crewline:pause paused={int(paused)} -->')}"


def spend_body(worker: str, day: str, tokens: int, usd: float) -> str:
    return f"Spend of host `{worker}` on {day} (UTC): ${usd:.2f}, {tokens:,} tokens.\n\n" + seal(
        f"<!-- crewline:spend worker={worker} day={day} tokens={tokens} usd={usd:.6f} -->"
    )


class ControlIssues:
    """Finds, creates and reads the control issue of each project, through the gateway."""

    def __init__(self, gateway: IssueTracker) -> None:
        self.gateway = gateway
        # Issues already looked through for the anchor note, by the updated_at they had.
        self._not_control: dict[str, str] = {}

    async def find(self, project: str) -> Issue | None:
        """The project's control issue (the lowest iid among crewline's own), or None."""
        found = await self._candidates(project)
        return found[0] if found else None

    async def _candidates(self, project: str) -> list[Issue]:
        # Every issue crewline's bot filed, open or closed, with or without the label: a
        # person closing it or removing its label must not lift a pause.
        bot = (await self.gateway.trust.own()).bot_id
        mine = await self.gateway.list_issues(project, state="all", author_id=bot)
        marked = [i for i in mine if CONTROL_MARKER in i.description]
        if marked:
            return sorted(marked, key=lambda i: i.iid)
        # No description says so: the trust filter has dropped one someone else edited.
        # crewline's anchor note still does. Only issues with no crewline marker left are
        # looked through (a goal or a flaky-test issue keeps its own), each once per change.
        anchored = []
        for issue in sorted(mine, key=lambda i: i.iid):
            if carries_marker(issue.description):
                continue
            if self._not_control.get(issue.ref) == issue.updated_at:
                continue
            if await self.gateway.find_note(project, issue.iid, ANCHOR_KEY) is not None:
                anchored.append(issue)
            else:
                self._not_control[issue.ref] = issue.updated_at
        return anchored

    async def ensure(self, project: str) -> Issue:
        """Find the control issue, or create it (and its label). A create whose answer was
        lost is found before any retry; a copy made by another host at the same moment is
        closed by whoever holds the higher iid."""
        found = await self.find(project)
        if found is not None:
            return found
        await ensure_label(self.gateway, project, CONTROL_LABEL, CONTROL_COLOR, CONTROL_DESCRIPTION)
        payload = {"title": CONTROL_TITLE, "description": CONTROL_BODY, "labels": CONTROL_LABEL}

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            return dict(gl.projects.get(project, lazy=True).issues.create(data).attributes)

        async def find_created(_: dict[str, Any]) -> dict[str, Any] | None:
            again = await self.find(project)
            return None if again is None else {"iid": again.iid}

        created = await self.gateway.calls.write(
            "issue.create", project, payload, create,
            text_fields=("title", "description"), find_existing=find_created,
        )  # fmt: skip
        mine = int(created["iid"])
        await self.gateway.upsert_note(project, mine, ANCHOR_KEY, ANCHOR_BODY)
        winners = await self._candidates(project)
        if winners and winners[0].iid != mine:
            await self.gateway.update_issue(project, mine, state_event="close")
            return winners[0]
        return await self.gateway.get_issue(project, mine)

    async def repair(self, view: ControlView) -> bool:
        """Put back what others changed: the label, the description (crewline's edit makes
        it crewline's again), the anchor note of an issue filed before there was one.
        True when something was written. A closed control issue is left closed: it works
        as well closed, and a person may want it out of the open list."""
        assert view.iid is not None
        wrote = False
        if view.damaged:
            await ensure_label(
                self.gateway, view.project, CONTROL_LABEL, CONTROL_COLOR, CONTROL_DESCRIPTION
            )
            await self.gateway.update_issue(
                view.project, view.iid, add_labels=[CONTROL_LABEL], description=CONTROL_BODY
            )
            wrote = True
        if not view.anchored:
            await self.gateway.upsert_note(view.project, view.iid, ANCHOR_KEY, ANCHOR_BODY)
            wrote = True
        return wrote

    async def read(self, project: str, issue: Issue) -> ControlView:
        return parse_view(project, issue, await self.gateway.notes(project, issue.iid))

    async def put_note(self, view: ControlView, key: str, body: str, note_id: int | None) -> None:
        """Edit the keyed note in place when its id is known, else find-or-create it."""
        assert view.iid is not None
        if note_id is not None:
            try:
                await self.gateway.edit_note(
                    view.project, view.iid, note_id, f"{body}\n\n{seal(note_marker(key))}"
                )
                return
            except ForgeNotFound:  # deleted by a human since it was read: post it again
                pass
        await self.gateway.upsert_note(view.project, view.iid, key, body)
