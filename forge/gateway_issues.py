"""Issue reads, transitions and what follows an issue update: the base of
:class:`forge.gateway.Gateway` and of the in-memory fake of the tests
(``tests/support/fake_tracker.FakeTracker``), which differ only in the one raw read and
listing (:meth:`IssueOps._issue_reader`, :meth:`IssueOps._issue_lister`) and in
:meth:`IssueOps.update_issue`: so the fake runs this code rather than a copy of it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from forge import metrics
from forge.gateway_notes import PER_PAGE, NoteOps
from forge.types import Issue
from workflow import Workflow, label_change, read_state

if TYPE_CHECKING:
    from forge.issue_index import IssueIndex


class StaleState(Exception):
    """The issue is no longer in the state the caller expected (someone else moved it)."""

    def __init__(self, issue: Issue, expected: Collection[str], actual: str | None) -> None:
        self.issue = issue
        self.expected = tuple(expected)
        self.actual = actual
        super().__init__(
            f"{issue.ref} is in {actual or 'no workflow state'}, expected one of {sorted(expected)}"
        )


class IssueOps(NoteOps, ABC):
    """What a subclass gives: its workflow, its issue index, the listeners of its moves,
    and the three abstract calls below that reach GitLab."""

    workflow: Workflow
    issues: IssueIndex
    moved: list[Callable[[Issue], None]]

    @abstractmethod
    def _issue_reader(self, project: str, iid: int) -> Callable[[Any], dict[str, Any]]:
        """The one raw read behind :meth:`get_issue`."""

    @abstractmethod
    def _issue_lister(
        self, project: str, params: dict[str, Any]
    ) -> Callable[[Any], list[dict[str, Any]]]:
        """The one raw read behind :meth:`list_issues`."""

    @abstractmethod
    async def update_issue(
        self,
        project: str,
        iid: int,
        *,
        add_labels: Sequence[str] = (),
        remove_labels: Sequence[str] = (),
        state_event: str | None = None,
        description: str | None = None,
    ) -> Issue:
        """Change labels, state or description in one update; the answer through
        :meth:`updated`."""

    async def get_issue(self, project: str, iid: int) -> Issue:
        get = self._issue_reader(project, iid)
        data = await self.calls.read("issue.get", f"{project}#{iid}", {}, get)
        issue = await self.trust.issue(Issue.of(project, data))
        self.issues.observe(issue)
        return issue

    async def list_issues(
        self,
        project: str,
        *,
        labels: Sequence[str] = (),
        updated_after: str | None = None,
        state: str = "opened",
        author_id: int | None = None,
    ) -> list[Issue]:
        """Issues in ``state`` carrying every label in ``labels`` (and filed by
        ``author_id`` when given), oldest update first, all pages."""
        params = list_params(labels, updated_after, state, author_id)
        list_ = self._issue_lister(project, params)
        return [
            await self.trust.issue(Issue.of(project, item))
            for item in await self.calls.read("issue.list", project, params, list_)
        ]

    async def list_ready(
        self, project: str, role: str, *, updated_after: str | None = None
    ) -> list[Issue]:
        """Issues waiting for ``role`` (one API call, filtered by the ready label)."""
        label = self.workflow.ready_state(role).label
        ready = await self.list_issues(project, labels=[label], updated_after=updated_after)
        if updated_after is None:  # the whole queue, not a slice of it
            metrics.READY_ISSUES.labels(role, project).set(len(ready))
        return ready

    async def transition(
        self,
        project: str,
        iid: int,
        target: str,
        *,
        expect: Collection[str] | None = None,
        known: Issue | None = None,
        close: bool = False,
    ) -> Issue:
        """Move the issue to ``target`` in ONE update: add its label, remove every other
        workflow label (so Free-tier GitLab ends with exactly one, and an issue found with
        two is repaired). With ``expect``, refuse (StaleState) unless the issue is in one
        of those states right before the update.

        ``known``: the issue as the caller holds it and knows it to be now (a write's answer
        just received, or labels the caller proved unchanged since): no read before the
        update (decision 0041). Without it the issue is read first. ``close``: the same
        update closes the issue."""
        issue = known if known is not None else await self.get_issue(project, iid)
        if expect is not None:
            state = read_state(self.workflow, issue.labels).state
            current = state.name if state else None
            if current not in expect:
                raise StaleState(issue, expect, current)
        change = label_change(self.workflow, issue.labels, target)
        closing = close and issue.state != "closed"
        if not change.add and not change.remove and not closing:
            return issue
        return await self.update_issue(
            project,
            iid,
            add_labels=change.add,
            remove_labels=change.remove,
            state_event="close" if closing else None,
        )

    async def updated(
        self, project: str, data: dict[str, Any], *, wrote_description: bool
    ) -> Issue:
        """The issue GitLab answered an update with, through the trust filter, and told to
        everyone who follows this host's own writes (the echo filter, the listing, the
        listeners). ``wrote_description``: crewline just wrote its description."""
        issue = Issue.of(project, data)
        if wrote_description:  # as GitLab stores it, written by crewline just now
            self.trust.wrote(issue.ref, issue.description)
        issue = await self.trust.issue(issue)
        self.own_writes.issue_updated(project, issue.iid, issue.updated_at)
        self.issues.observe(issue, written=True)
        for listener in list(self.moved):
            listener(issue)
        return issue


def list_params(
    labels: Sequence[str], updated_after: str | None, state: str, author_id: int | None
) -> dict[str, Any]:
    """The query of :meth:`Gateway.list_issues`: oldest update first, one page at a time."""
    params: dict[str, Any] = {
        "state": state,
        "order_by": "updated_at",
        "sort": "asc",
        "per_page": PER_PAGE,
    }
    if labels:
        params["labels"] = ",".join(labels)
    if updated_after:
        params["updated_after"] = updated_after
    if author_id is not None:
        params["author_id"] = author_id
    return params
