"""One listing of a project's issues that serves a whole pass: every role, the janitor, the
gates and dependency checks read it instead of listing per label (docs/decisions/0028).

The first refresh (and one every ``full_every`` seconds) lists every open issue, plus the
closed ones still carrying a label in ``keep_closed`` (the states whose MR a human may merge,
which closes the issue). Every other refresh asks only for issues updated since the last one
(``updated_after``, open and closed alike), so a pass over a project where nothing changed
costs one call however many issues wait. Waiting issues are not updated while they wait, but
they stay in the index from the listing that found them; an issue that changes state is
updated, so the next refresh sees it; a closed issue is dropped. The periodic full listing
forgets what disappeared without an update (a deleted issue, a moved project).

Hot reads use python-gitlab's raw ``http_list`` and plain dicts: building a python-gitlab
object per listed issue costs more than the data. Every issue still passes the trust filter
(docs/decisions/0017). Writes made through the gateway and fresh reads of one issue are fed
back in (:meth:`IssueIndex.observe`), so this host's own moves show at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import gitlab

from forge.client import ForgeNotFound
from forge.raw_http import project_path, raw_list
from forge.types import Issue
from workflow import read_state

if TYPE_CHECKING:
    from forge.gateway_issues import IssueOps

PER_PAGE = 100
# A delta asks from a little before the newest change it saw: a write whose transaction
# committed late carries an updated_at a little older than what was already listed.
OVERLAP = timedelta(seconds=30)


def _moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Listing:
    """What one project's issues looked like at the last refresh."""

    project: str
    issues: dict[int, Issue] = field(default_factory=dict)
    refreshed: float = 0.0  # time.monotonic() of the last refresh
    full_at: float = 0.0  # time.monotonic() of the last full listing
    newest: str = ""  # the newest updated_at any refresh saw, open or closed
    changed: frozenset[int] = frozenset()  # the iids the last refresh found changed
    newest_since: float = 0.0  # time.monotonic() of the refresh that first saw ``newest``
    # Every write stamped up to this updated_at is known to have been listed ("": none yet).
    settled: str = ""

    def at(self, label: str, *, closed: bool = False) -> list[Issue]:
        """Issues carrying ``label``, oldest update first; only open ones unless ``closed``."""
        found = [
            issue
            for issue in self.issues.values()
            if label in issue.labels and (closed or issue.state == "opened")
        ]
        return sorted(found, key=lambda issue: (issue.updated_at, issue.iid))

    def get(self, iid: int) -> Issue | None:
        return self.issues.get(iid)


class IssueIndex:
    def __init__(
        self,
        gateway: IssueOps,
        *,
        keep_closed: Collection[str] = (),
        full_every: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.keep_closed = frozenset(keep_closed)
        self.full_every = full_every
        self.clock = clock
        self._listings: dict[str, Listing] = {}
        # Issues a lookup found outside the listing (closed, or missing: None), kept until a
        # refresh sees them change.
        self._outside: dict[tuple[str, int], Issue | None] = {}

    def listing(self, project: str) -> Listing | None:
        """The last refresh of ``project``, if there was one."""
        return self._listings.get(project)

    async def current(self, project: str, *, max_age: float = 5.0) -> Listing:
        """The listing, refreshed unless a refresh happened within ``max_age`` seconds (the
        engine's pass just listed: the janitor and the gates read the same listing)."""
        known = self._listings.get(project)
        if known is not None and self.clock() - known.refreshed <= max_age:
            return known
        return await self.refresh(project)

    async def refresh(self, project: str) -> Listing:
        """One call when nothing changed (a delta); a full listing at first and every
        ``full_every`` seconds."""
        known = self._listings.get(project)
        now = self.clock()
        if known is None or not known.newest or now - known.full_at >= self.full_every:
            listing = await self._full(project, now)
        else:
            listing = await self._delta(known, now)
        self._listings[project] = listing
        for iid in listing.changed:
            self._outside.pop((project, iid), None)
        return listing

    async def _full(self, project: str, now: float) -> Listing:
        items = await self._list(project, {"state": "opened"})
        for label in sorted(self.keep_closed):
            items += await self._list(project, {"state": "closed", "labels": label})
        # Where the next delta starts: the project's newest change, closed issues included.
        latest = await self._list(
            project, {"state": "all", "order_by": "updated_at", "sort": "desc", "per_page": 1}, 1
        )
        # The newest stamp is known once its answer is in: the settling clock starts then.
        listing = Listing(project, refreshed=now, full_at=now, newest_since=self.clock())
        for issue in await self._trusted(project, items):
            listing.issues[issue.iid] = issue
        listing.changed = frozenset(listing.issues)
        listing.newest = _newest([*items, *latest], _stamp(datetime(1970, 1, 1, tzinfo=UTC)))
        self._outside = {key: v for key, v in self._outside.items() if key[0] != project}
        return listing

    async def _delta(self, known: Listing, now: float) -> Listing:
        """What changed since the last refresh: everything stamped from a little before the
        newest change seen (OVERLAP), or from where the listing is known settled.

        Settled: a listing that began OVERLAP after the answer that first showed ``newest``
        came in found every write stamped up to ``newest`` committed (a write commits within
        OVERLAP of its stamp), so later deltas start there. Without it a project gone quiet
        after a burst (a thousand issues filed by a script) listed the whole burst on every
        pass."""
        since = _stamp(_moment(known.newest) - OVERLAP)
        if known.settled and _older(since, known.settled):
            since = known.settled
        items = await self._list(known.project, {"state": "all", "updated_after": since})
        answered = self.clock()
        changed: set[int] = set()
        for issue in await self._trusted(known.project, items):
            before = known.issues.get(issue.iid)
            if before is not None and before.updated_at == issue.updated_at:
                continue  # listed again inside the overlap: unchanged
            changed.add(issue.iid)
            self._put(known, issue)
        known.refreshed = now
        known.changed = frozenset(changed)
        newest = _newest(items, known.newest)
        if newest != known.newest:
            known.newest, known.newest_since = newest, answered
        elif now - known.newest_since >= OVERLAP.total_seconds():
            known.settled = newest
        return known

    def _put(self, listing: Listing, issue: Issue) -> None:
        if issue.state == "opened" or self._kept_closed(issue):
            listing.issues[issue.iid] = issue
        else:
            listing.issues.pop(issue.iid, None)
            self._outside[(listing.project, issue.iid)] = issue

    def _kept_closed(self, issue: Issue) -> bool:
        return any(label in self.keep_closed for label in issue.labels)

    def observe(self, issue: Issue, *, written: bool = False) -> None:
        """A fresher copy of one issue (a write's answer, a fresh read): never older than
        what the listing holds. ``written``: the answer to this host's own write."""
        listing = self._listings.get(issue.project)
        if listing is None:
            return
        before = listing.issues.get(issue.iid)
        if before is not None and _older(issue.updated_at, before.updated_at):
            return
        self._outside.pop((issue.project, issue.iid), None)
        self._put(listing, issue)
        if written:
            # A human's write to the issue may be stamped before ours and committed after
            # it, and listed before our answer came in: the copy held now hides it. Deltas
            # go back to the overlap until the listing is quiet for OVERLAP again, so one of
            # them lists it. A read's copy hides nothing (its stamp is the newest committed)
            # and leaves the listing settled: every poll reads the control issue.
            listing.settled, listing.newest_since = "", self.clock()

    async def lookup(self, project: str, iid: int) -> Issue | None:
        """Issue ``iid`` as the listing knows it; one read for an issue outside it (closed or
        missing: None), kept until a refresh sees it change. Without a listing yet, a read."""
        listing = self._listings.get(project)
        if listing is None:
            try:
                return await self.gateway.get_issue(project, iid)
            except ForgeNotFound:
                return None
        if iid in listing.issues:
            return listing.issues[iid]
        key = (project, iid)
        if key not in self._outside:
            try:
                self._outside[key] = await self.gateway.get_issue(project, iid)
            except ForgeNotFound:
                self._outside[key] = None
        return self._outside[key]

    def twice_labelled(self, project: str) -> list[Issue]:
        """Open issues carrying more than one workflow label (Free tier lets them coexist)."""
        listing = self._listings.get(project)
        if listing is None:
            return []
        wf = self.gateway.workflow
        return [
            issue
            for issue in listing.issues.values()
            if issue.state == "opened" and read_state(wf, issue.labels).needs_repair
        ]

    async def _list(
        self, project: str, params: dict[str, Any], pages: int | None = None
    ) -> list[dict[str, Any]]:
        # Ordered by creation: an issue updated while the pages are read does not move, so
        # no other issue shifts past a page boundary unseen.
        query = {"order_by": "created_at", "sort": "asc", "per_page": PER_PAGE, **params}
        path = project_path(project, "issues")

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            return raw_list(gl, path, query, all_pages=pages != 1)

        return await self.gateway.calls.read("issue.list", project, query, list_)

    async def _trusted(self, project: str, items: Iterable[dict[str, Any]]) -> list[Issue]:
        return [await self.gateway.trust.issue(Issue.of(project, item)) for item in items]


def _newest(items: Iterable[dict[str, Any]], previous: str) -> str:
    stamps = [str(item["updated_at"]) for item in items if item.get("updated_at")]
    if previous:
        stamps.append(previous)
    return _stamp(max(_moment(stamp) for stamp in stamps)) if stamps else previous


def _older(stamp: str, than: str) -> bool:
    return bool(stamp and than) and _moment(stamp) < _moment(than)
