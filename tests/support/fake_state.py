"""The state behind the in-memory fakes of the GitLab ports (``tests/support/fake_tracker.py``,
``tests/support/fake_merge_requests.py``): GitLab's objects as the JSON dicts its REST API
answers, so the fakes build their typed values with the same ``Issue.of``, ``Note.of``,
``MergeRequest.of`` and ``Discussion.of`` the real gateway uses.

The fakes' calls go through a real :class:`forge.calls.AuditedCalls` over
:class:`FakeClient`, a client that runs the call in process instead of over HTTP: every
write passes the same marker sink (``forge/sink.py``) and the same guard as a real write, and
lands in :class:`MemoryAudit`. A call whose function would talk to python-gitlab (one of
the real gateway's methods the fakes do not replace) gets :class:`NoGitLab` and raises
``NotImplementedError`` naming the operation, instead of an ``AttributeError`` on ``None``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from forge.calls import AuditedCalls
from forge.client import ForgeBadRequest, ForgeNotFound
from forge.guard import Guard
from forge.trust import Editors, OwnUsers, Trust
from sim.issues.labels import next_label_names
from tests.support.fake_ci_state import FakeCi

T = TypeVar("T")

BOT = "crewline-bot"
BOT_TOKEN = "sim-bot-token"  # the token the guard refuses to write, as in tests/support/forge.py
# The simulator's users (sim/core/app.py) and one stranger; ids are the fake's own.
USER_IDS = {"root": 1, BOT: 2, "maintainer": 3, "mallory": 4}
DEVELOPER, MAINTAINER = 30, 40
_EPOCH = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class NoGitLab:
    """What a call function gets instead of python-gitlab: any use of it is a method the
    fakes do not implement."""

    def __init__(self, operation: str) -> None:
        self._operation = operation

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"the in-memory fake does not implement {self._operation}")


class FakeClient:
    """Stands in for ``forge.client.GitLabClient`` under ``AuditedCalls``: no HTTP, no
    retries (nothing in memory is lost in transit), so ``find_existing`` is never needed."""

    url = "http://fake.gitlab.invalid"

    async def call(
        self,
        operation: str,
        fn: Callable[[Any], T],
        *,
        once: bool = False,
        find_existing: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        return fn(NoGitLab(operation))

    async def close(self) -> None:
        return None


@dataclass
class MemoryAudit:
    """The audit trail of the fakes' calls (``forge.calls.AuditSink``), kept in lists."""

    writes: list[tuple[str, str, str, Any, str]] = field(default_factory=list)
    reads: list[tuple[str, str, str, str]] = field(default_factory=list)

    async def append(
        self, who: str, what: str, target: str, payload: Any, verdict: str = "ok"
    ) -> None:
        self.writes.append((who, what, target, payload, verdict))

    async def record_read(self, who: str, what: str, target: str, verdict: str = "ok") -> None:
        self.reads.append((who, what, target, verdict))

    def verdicts(self, target: str) -> list[str]:
        return [verdict for _, _, where, _, verdict in self.writes if where == target]


class FakeTrust(Trust):
    """The real trust filter, told crewline's users instead of asking ``GET /user``."""

    def __init__(self, calls: AuditedCalls, own: OwnUsers, editors: Editors | None = None) -> None:
        super().__init__(calls, editors=editors)
        self._fixed = own

    async def learn(self, *others: AuditedCalls) -> OwnUsers:
        self._own = self._fixed
        return self._fixed


def audited_calls(audit: MemoryAudit, who: str = "crewline-test") -> AuditedCalls:
    # FakeClient is no GitLabClient: AuditedCalls uses only its ``call`` and ``url``.
    return AuditedCalls(FakeClient(), Guard([BOT_TOKEN]), audit, who)  # type: ignore[arg-type]


@dataclass
class FakeGitLab:
    """GitLab's objects, by project: issues, notes (of issues and MRs), links, members,
    branches, merge requests and discussions; CI (pipelines, jobs, commit parents) in
    ``ci`` (``tests/support/fake_ci_state.py``), and the MR diffs a test scripts in ``diffs``. ``premium`` (the default): a scoped label
    added to an issue drops the other labels of its scope; ``premium=False`` is GitLab Free,
    where they coexist (the simulator's own rule, reused)."""

    premium: bool = True
    issues: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    notes: dict[tuple[str, str, int], list[dict[str, Any]]] = field(default_factory=dict)
    blocked_by: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    members: dict[tuple[str, str], int] = field(default_factory=dict)
    branches: dict[tuple[str, str], str] = field(default_factory=dict)
    mrs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    approvals: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    label_events: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    projects: set[str] = field(default_factory=set)
    users: dict[str, int] = field(default_factory=lambda: dict(USER_IDS))  # username -> id
    diffs: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # scripted
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ticks: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    ci: FakeCi = field(init=False)

    def __post_init__(self) -> None:
        self.ci = FakeCi(self.next_id, self.now)  # one id sequence and one clock for both

    # ------------------------------------------------------------ set-up, as an admin would

    def add_project(self, project: str, *, main: bool = True) -> None:
        """A project with crewline-bot (Developer) and maintainer (Maintainer), like
        ``tests/support/forge.make_project``; ``main``: with a first commit on main."""
        self.projects.add(project)
        self.members[(project, BOT)] = DEVELOPER
        self.members[(project, "maintainer")] = MAINTAINER
        if main:
            self.branches[(project, "main")] = self.sha("main")
            self.ci.parents[self.branches[(project, "main")]] = []  # a root commit

    def sha(self, seed: str) -> str:
        return hashlib.sha1(f"{seed}:{self.next_id()}".encode()).hexdigest()

    def next_id(self) -> int:
        return next(self._ids)

    def now(self) -> str:
        """A timestamp one millisecond after the last: every write is ordered. The fake's
        clock starts at 2026-12-04T12:00:00Z and moves only by writes and :meth:`advance`."""
        moment = _EPOCH + timedelta(milliseconds=next(self._ticks))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def advance(self, seconds: float) -> None:
        """Let time pass: the next write is ``seconds`` later."""
        self._ticks = itertools.count(next(self._ticks) + round(seconds * 1000))

    def user(self, username: str) -> dict[str, Any]:
        return {"id": self.users[username], "username": username}

    def add_member(self, project: str, username: str, level: int) -> None:
        """A user (new, or known) with ``level`` access on ``project`` (10 Guest ... 50 Owner)."""
        self.users.setdefault(username, 100 + len(self.users))
        self.members[(project, username)] = level

    # ------------------------------------------------------------ lookups

    def issue(self, project: str, iid: int) -> dict[str, Any]:
        found = self.issues.get((project, iid))
        if found is None:
            raise ForgeNotFound("issue.get", "404 Issue Not Found", 404)
        return found

    def mr(self, project: str, iid: int) -> dict[str, Any]:
        found = self.mrs.get((project, iid))
        if found is None:
            raise ForgeNotFound("mr.get", "404 Merge Request Not Found", 404)
        return found

    def notes_of(self, project: str, on: str, iid: int) -> list[dict[str, Any]]:
        (self.issue if on == "issue" else self.mr)(project, iid)  # 404 as GitLab would
        return self.notes.setdefault((project, on, iid), [])

    def next_iid(self, project: str, table: dict[tuple[str, int], Any]) -> int:
        return 1 + max((iid for where, iid in table if where == project), default=0)

    def labels_after(
        self, current: list[str], add: list[str], remove: list[str] | None = None
    ) -> list[str]:
        return next_label_names(current, add=add, remove=remove, exclusive_scopes=self.premium)

    # ------------------------------------------------------------ writes by anyone

    def add_note(
        self,
        project: str,
        on: str,
        iid: int,
        body: str,
        author: str,
        *,
        system: bool = False,
        discussion: str | None = None,
        resolvable: bool = False,
    ) -> dict[str, Any]:
        """A note, in a discussion of its own unless ``discussion`` names one (as GitLab
        keeps every note of an MR in a discussion: a plain comment is an individual note,
        not resolvable)."""
        stamp, note_id = self.now(), self.next_id()
        note = {
            "id": note_id,
            "body": body,
            "author": self.user(author),
            "created_at": stamp,
            "updated_at": stamp,
            "system": system,
            "discussion_id": discussion or hashlib.sha1(f"d{note_id}".encode()).hexdigest(),
            "resolvable": resolvable,
            "resolved": False,
            "position": None,
        }
        self.notes_of(project, on, iid).append(note)
        self.touch(project, on, iid, stamp)
        return note

    def touch(self, project: str, on: str, iid: int, stamp: str) -> None:
        """A note changes its issue: GitLab moves the issue's ``updated_at``."""
        if on == "issue":
            self.issue(project, iid)["updated_at"] = stamp

    def edit_note(self, project: str, on: str, iid: int, note_id: int, body: str) -> dict[str, Any]:
        for note in self.notes_of(project, on, iid):
            if note["id"] == note_id:
                note.update(body=body, updated_at=self.now())
                self.touch(project, on, iid, note["updated_at"])
                return dict(note)
        raise ForgeNotFound("note.edit", "404 Note Not Found", 404)

    def new_issue(self, project: str, data: dict[str, Any], author: str) -> dict[str, Any]:
        if project not in self.projects:
            raise ForgeNotFound("issue.create", "404 Project Not Found", 404)
        iid, stamp = self.next_iid(project, self.issues), self.now()
        labels = [name for name in str(data.get("labels") or "").split(",") if name]
        issue = {
            "iid": iid,
            "id": self.next_id(),
            "title": data["title"],
            "description": data.get("description") or "",
            "labels": [],
            "state": "opened",
            "author": self.user(author),
            "created_at": stamp,
            "updated_at": stamp,
            "web_url": f"http://fake.gitlab.invalid/{project}/-/issues/{iid}",
        }
        self.issues[(project, iid)] = issue
        self.relabel(project, iid, self.labels_after([], labels), author, stamp)
        return dict(issue)

    def relabel(self, project: str, iid: int, labels: list[str], user: str, stamp: str) -> None:
        """Set the issue's labels, with a label event for each one added or removed."""
        issue = self.issue(project, iid)
        before = list(issue["labels"])
        changes = [("remove", name) for name in before if name not in labels]
        changes += [("add", name) for name in labels if name not in before]
        events = self.label_events.setdefault((project, iid), [])
        for action, name in changes:
            events.append(
                {
                    "id": self.next_id(),
                    "action": action,
                    "label": {"name": name},
                    "created_at": stamp,
                    "user": self.user(user),
                }
            )
        issue["labels"] = labels

    def update_issue(
        self, project: str, iid: int, data: dict[str, Any], editor: str
    ) -> dict[str, Any]:
        """GitLab's issue update: labels added and removed, closed or reopened, the
        description replaced (with its "changed the description" system note)."""
        issue = self.issue(project, iid)
        add, remove = (
            [name for name in str(data.get(key) or "").split(",") if name]
            for key in ("add_labels", "remove_labels")
        )
        stamp = self.now()
        self.relabel(
            project, iid, self.labels_after(list(issue["labels"]), add, remove), editor, stamp
        )
        event = data.get("state_event")
        if event in ("close", "reopen"):
            issue["state"] = "closed" if event == "close" else "opened"
        if "description" in data and data["description"] != issue["description"]:
            issue["description"] = data["description"]
            self.add_note(project, "issue", iid, "changed the description", editor, system=True)
        issue["updated_at"] = stamp
        return dict(issue)

    def query(self, project: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """``GET /projects/:id/issues`` with the parameters crewline sends: ``state``,
        ``labels`` (all of them), ``updated_after`` (inclusive), ``author_id``, ordered by
        ``order_by`` (``created_at`` or ``updated_at``) in ``sort`` order."""
        state = params.get("state", "opened")
        labels = [name for name in str(params.get("labels") or "").split(",") if name]
        after, author = params.get("updated_after"), params.get("author_id")
        found = [
            dict(issue)
            for (where, _), issue in self.issues.items()
            if where == project
            and (state == "all" or issue["state"] == state)
            and all(name in issue["labels"] for name in labels)
            and (not after or issue["updated_at"] >= after)
            and (author is None or issue["author"]["id"] == int(author))
        ]
        key = str(params.get("order_by") or "created_at")
        found.sort(key=lambda issue: (issue[key], issue["iid"]))
        return found[::-1] if params.get("sort") == "desc" else found

    # ------------------------------------------------------------ merge requests

    def new_mr(self, project: str, data: dict[str, Any], author: str) -> dict[str, Any]:
        sha = self.branches.get((project, data["source_branch"]))
        if sha is None or (project, data["target_branch"]) not in self.branches:
            raise ForgeBadRequest("mr.create", "400 Invalid source or target branch", 400)
        iid = self.next_iid(project, self.mrs)
        self.mrs[(project, iid)] = {
            "iid": iid,
            "id": self.next_id(),
            "title": data["title"],
            "description": data.get("description") or "",
            "state": "opened",
            "source_branch": data["source_branch"],
            "target_branch": data["target_branch"],
            "sha": sha,
            "labels": [name for name in str(data.get("labels") or "").split(",") if name],
            "author": self.user(author),
            "web_url": f"http://fake.gitlab.invalid/{project}/-/merge_requests/{iid}",
        }
        return self.mr_json(project, iid)

    def mr_json(self, project: str, iid: int) -> dict[str, Any]:
        """The MR as GitLab answers it: ``draft`` from its title, ``detailed_merge_status``
        the first failing check among those the fake knows (the simulator's order)."""
        mr = dict(self.mr(project, iid))
        mr["draft"] = str(mr["title"]).startswith("Draft:")
        source = self.branches.get((project, mr["source_branch"]))
        if mr["state"] != "opened":
            status = "not_open"
        elif mr["draft"]:
            status = "draft_status"
        elif source is None or source == self.branches.get((project, mr["target_branch"])):
            status = "commits_status"
        else:
            status = "mergeable"
        mr["detailed_merge_status"] = status
        mr["head_pipeline"] = self.ci.head_pipeline(project, iid, mr["sha"])
        return mr

    def link_blocked(self, project: str, iid: int, blocker: int, user: str = "root") -> None:
        """``blocker`` blocks ``iid`` (an "is blocked by" link, GitLab Premium), with the
        system notes GitLab writes on both issues (so both change)."""
        self.blocked_by.setdefault((project, iid), []).append(blocker)
        said = {iid: f"blocked by #{blocker}", blocker: f"blocking #{iid}"}
        for where, text in said.items():
            self.add_note(
                project, "issue", where, f"marked this issue as {text}", user, system=True
            )
