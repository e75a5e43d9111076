"""The GitLab ports: the issue tracker, merge requests and CI reads as ``Protocol``s, each
answering with forge's typed values (``forge.types``, ``forge.mr_types``,
``forge.ci_types``), never GitLab's raw JSON (SPEC §12). ``forge.gateway.Gateway``,
``forge.merge_gateway.MergeGateway`` and ``forge.ci_history.CiHistory`` implement them; the
roles (through ``roles/ports.py``, which gathers every port) and forge's own helpers
(claims, control issue, labels) are typed against these, so an in-memory fake can stand in
for GitLab. Only the composition root in ``bot/`` builds the concrete gateways.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from forge.ci_types import Job, TestCase, TestReport
from forge.claim_notes import ClaimView
from forge.claim_types import Claim, LeaseT, LocalLeases
from forge.guard import Guard
from forge.mr_types import Discussion, DiscussionNote, FileDiff
from forge.types import Approval, Award, Issue, LabelEvent, MergeRequest, Note, Pipeline
from workflow import Workflow

if TYPE_CHECKING:  # the raw calls' functions take python-gitlab's client; nothing else does
    import gitlab

Noteable = Literal["issue", "mr"]
T = TypeVar("T")


class GitLabCalls(Protocol):
    """One GitLab identity's audited, guarded calls (``forge.calls.AuditedCalls``): who
    writes, the guard its writes pass (a push is screened by it too), and the raw read and
    write forge's own helpers (labels, the control issue, the privilege check) make with
    python-gitlab. Roles use only ``who`` and ``guard``."""

    @property
    def who(self) -> str: ...

    @property
    def guard(self) -> Guard: ...

    async def read(
        self,
        operation: str,
        target: str,
        params: Mapping[str, Any],
        fn: Callable[[gitlab.Gitlab], T],
    ) -> T: ...

    async def write(
        self,
        operation: str,
        target: str,
        payload: Mapping[str, Any],
        fn: Callable[[gitlab.Gitlab, dict[str, Any]], T],
        *,
        text_fields: tuple[str, ...] = (),
        branch_fields: tuple[str, ...] = (),
        content_fields: tuple[str, ...] = (),
        redact_fields: tuple[str, ...] = (),
        once: bool = False,
        find_existing: Callable[[dict[str, Any]], Awaitable[T | None]] | None = None,
    ) -> T: ...


# ------------------------------------------------------------------ the tracker's parts


class IssueSnapshot(Protocol):
    """One listing of a project's open issues (and closed ones kept for the janitor)."""

    def at(self, label: str, *, closed: bool = False) -> list[Issue]: ...

    def get(self, iid: int) -> Issue | None: ...


class IssueListings(Protocol):
    """One listing per pass, shared by the engine, the janitor and the gates."""

    def listing(self, project: str) -> IssueSnapshot | None: ...

    async def current(self, project: str, *, max_age: float = 5.0) -> IssueSnapshot: ...

    async def refresh(self, project: str) -> IssueSnapshot: ...

    async def lookup(self, project: str, iid: int) -> Issue | None: ...

    def twice_labelled(self, project: str) -> list[Issue]: ...


class AccessLookup(Protocol):
    async def level(self, project: str, username: str) -> int: ...


class OwnUserNames(Protocol):
    @property
    def usernames(self) -> frozenset[str]: ...

    @property
    def bot_id(self) -> int: ...  # the bot token's user: it files every issue crewline files


class OwnUsers(Protocol):
    """crewline's own GitLab users: only their notes keep crewline's markers."""

    async def own(self) -> OwnUserNames: ...


class OwnWriteEcho(Protocol):
    """Tells a webhook about crewline's own write from one about someone else's."""

    def issue_event(self, project: str, iid: int, updated_at: Any) -> bool: ...

    def note_event(self, note_id: int) -> bool: ...


# ------------------------------------------------------------------ GitLab ports


class MergeRequests(Protocol):
    """Branches, merge requests, discussions, pipelines and jobs (``forge.MergeGateway``).

    Writes are find-or-create: an MR, a discussion, a reply or a job retry whose answer is
    lost is found (by source branch, by its hidden marker, by the newer job) before any
    retry, so a lost response never becomes a second copy."""

    async def branch_sha(self, project: str, name: str) -> str | None: ...

    async def ensure_branch(self, project: str, name: str, ref: str) -> str: ...

    async def find_mr(
        self, project: str, source_branch: str, *, state: str = "opened"
    ) -> MergeRequest | None: ...

    async def get_mr(self, project: str, iid: int) -> MergeRequest: ...

    async def approvals(self, project: str, iid: int) -> list[Approval]: ...

    async def ensure_mr(
        self,
        project: str,
        *,
        source_branch: str,
        target_branch: str,
        title: str,
        description: str,
        draft: bool = True,
        labels: Sequence[str] = (),
    ) -> MergeRequest: ...

    async def update_mr(self, project: str, iid: int, **fields: Any) -> MergeRequest: ...

    async def merge(
        self, project: str, iid: int, *, sha: str, remove_source_branch: bool = True
    ) -> MergeRequest: ...

    async def diffs(self, project: str, iid: int) -> list[FileDiff]: ...

    async def discussions(self, project: str, iid: int) -> list[Discussion]: ...

    async def open_discussion(
        self, project: str, iid: int, body: str, *, position: dict[str, Any] | None = None
    ) -> Discussion: ...

    async def reply(
        self, project: str, iid: int, discussion_id: str, body: str
    ) -> DiscussionNote: ...

    async def resolve(
        self, project: str, iid: int, discussion_id: str, *, resolved: bool = True
    ) -> None: ...

    async def pipelines(
        self,
        project: str,
        *,
        ref: str | None = None,
        sha: str | None = None,
        status: str | None = None,
    ) -> list[Pipeline]: ...

    async def pipeline(self, project: str, pipeline_id: int) -> Pipeline: ...

    async def mr_pipelines(self, project: str, iid: int) -> list[Pipeline]: ...

    async def commit_parents(self, project: str, sha: str) -> list[str]: ...

    async def test_report(self, project: str, pipeline_id: int) -> TestReport: ...

    async def jobs(self, project: str, pipeline_id: int) -> list[Job]: ...

    async def job_trace(self, project: str, job_id: int) -> str: ...

    async def retry_job(self, project: str, job_id: int) -> Job: ...


class CiReads(Protocol):
    """A project's CI history for the flaky-test detector (``forge.CiHistory``); reads only."""

    async def recent_pipelines(self, project: str, *, limit: int) -> list[Pipeline]: ...

    async def jobs(self, project: str, pipeline_id: int) -> list[Job]: ...

    async def job_report(self, project: str, job_id: int, path: str) -> list[TestCase]: ...

    async def job(self, project: str, job_id: int) -> Job: ...

    async def file_at(self, project: str, path: str, ref: str) -> str | None: ...


class IssueTracker(Protocol):
    """Issues, labels and notes (``forge.Gateway``), with the merge request and CI ports
    of the same GitLab identity.

    Notes are keyed: a note carrying a key is found before it is posted, and a post whose
    answer is lost is searched for by its hidden marker before any retry. A transition
    checks the issue's current state first and raises ``forge.gateway.StaleState`` when
    someone else moved it."""

    # Settable: the flaky-test doctor moves issues through its own workflow with a copy.
    workflow: Workflow

    @property
    def url(self) -> str: ...

    @property
    def merges(self) -> MergeRequests: ...

    @property
    def ci(self) -> CiReads: ...

    @property
    def issues(self) -> IssueListings: ...

    @property
    def access(self) -> AccessLookup: ...

    @property
    def trust(self) -> OwnUsers: ...

    @property
    def own_writes(self) -> OwnWriteEcho: ...

    @property
    def moved(self) -> list[Callable[[Issue], None]]: ...

    @property
    def calls(self) -> GitLabCalls:
        """The audited, guarded calls of this GitLab identity: who writes, its guard (a
        push is screened by it), and forge's own helpers' calls (labels, control issue)."""
        ...

    async def create_issue(
        self, project: str, title: str, description: str, labels: Sequence[str] = ()
    ) -> Issue: ...

    async def get_issue(self, project: str, iid: int) -> Issue: ...

    async def list_issues(
        self,
        project: str,
        *,
        labels: Sequence[str] = (),
        updated_after: str | None = None,
        state: str = "opened",
        author_id: int | None = None,
    ) -> list[Issue]: ...

    async def transition(
        self,
        project: str,
        iid: int,
        target: str,
        *,
        expect: Collection[str] | None = None,
        known: Issue | None = None,
        close: bool = False,
    ) -> Issue: ...

    async def update_issue(
        self,
        project: str,
        iid: int,
        *,
        add_labels: Sequence[str] = (),
        remove_labels: Sequence[str] = (),
        state_event: str | None = None,
        description: str | None = None,
    ) -> Issue: ...

    async def label_events(self, project: str, iid: int) -> list[LabelEvent]: ...

    async def blocked_by(self, project: str, iid: int) -> list[int]: ...

    async def member_access_level(self, project: str, username: str) -> int: ...

    async def note_awards(self, project: str, iid: int, note_id: int) -> list[Award]: ...

    async def note_replies(self, project: str, iid: int, note_id: int) -> list[Note]: ...

    async def notes(self, project: str, iid: int, *, on: Noteable = "issue") -> list[Note]: ...

    async def post_note(
        self, project: str, iid: int, body: str, *, on: Noteable = "issue", quoted: bool = False
    ) -> Note: ...

    async def edit_note(
        self, project: str, iid: int, note_id: int, body: str, *, on: Noteable = "issue"
    ) -> Note: ...

    async def delete_note(
        self, project: str, iid: int, note_id: int, *, on: Noteable = "issue"
    ) -> None: ...

    async def remove_copies(self, project: str, iid: int, notes: Sequence[Note]) -> int: ...

    async def finish_pending_notes(self) -> list[str]:
        """Run the keyed notes' copy checks a crash or a failed read left owed (SPEC §10)."""
        ...

    async def find_note(
        self,
        project: str,
        iid: int,
        key: str,
        *,
        on: Noteable = "issue",
        known: Sequence[Note] | None = None,
    ) -> Note | None: ...

    async def upsert_note(
        self,
        project: str,
        iid: int,
        key: str,
        body: str,
        *,
        on: Noteable = "issue",
        quoted: bool = False,
        known: Sequence[Note] | None = None,
    ) -> Note: ...


# ------------------------------------------------------------------ the claim protocol


class IssueClaims(Protocol[LeaseT]):
    """The claim protocol (SPEC §3) as the engine and the roles use it; implemented by
    ``forge.claims.Claims`` over an :class:`IssueTracker` and this host's leases."""

    @property
    def worker(self) -> str: ...

    @property
    def ttl(self) -> float: ...

    @property
    def leases(self) -> LocalLeases[LeaseT]: ...

    def over(self, gateway: IssueTracker) -> IssueClaims[LeaseT]:
        """The same claims (worker, leases, TTL) through another view of the tracker (the
        flaky-test doctor moves issues through its own workflow)."""
        ...

    async def claim(self, issue: Issue, role: str, run: str) -> Claim[LeaseT] | None: ...

    async def carry(
        self, held: Claim[LeaseT], issue: Issue, role: str, run: str
    ) -> Claim[LeaseT] | None: ...

    async def current(self, project: str, iid: int, ready_label: str) -> ClaimView | None: ...

    async def check(self, claim: Claim[LeaseT]) -> None: ...

    def check_time(self, claim: Claim[LeaseT]) -> None: ...

    async def held_labels(self, claim: Claim[LeaseT]) -> tuple[str, ...] | None: ...

    async def renew(self, claim: Claim[LeaseT]) -> Claim[LeaseT]: ...

    async def release(self, claim: Claim[LeaseT], *, keep_lease: bool = False) -> None: ...

    async def adopt(
        self, issue: Issue, role: str, run: str, *, moved_on: bool = False
    ) -> Claim[LeaseT] | None: ...

    async def expire(
        self, issue: Issue, role: str, *, reason: str, target: str | None = None
    ) -> bool: ...
