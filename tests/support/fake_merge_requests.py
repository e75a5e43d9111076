"""An in-memory ``MergeRequests`` port (``forge/ports.py``): branches, merge requests and
their discussions kept in a :class:`~tests.support.fake_state.FakeGitLab`, the partner of
``tests/support/fake_tracker.FakeTracker`` (which reaches it as ``tracker.merges``).
``tests/contract/test_merge_requests_contract.py`` holds it to what the real
``forge.merge_gateway.MergeGateway`` does against the simulator.

As on GitLab (and in the simulator) an MR's notes and its discussions are one list: a note
posted with ``FakeTracker.post_note(..., on="mr")`` is an individual, unresolvable
discussion; a discussion opened here is resolvable. Discussions pass the real trust filter,
so a stranger's hidden marker is removed; writes pass the real ``AuditedCalls``.

The pipeline and job calls are ``tests/support/fake_ci.FakeCiCalls``'s, over the CI a test
scripts in ``state.ci`` (``tests/support/fake_ci_state.py``). A push (:meth:`push`) records its
commit's parent, so ``commit_parents`` and the MR's pipelines follow the branch's pushes;
the fake keeps no files, so :meth:`diffs` answers what the test put in ``state.diffs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forge.calls import AuditedCalls
from forge.client import ForgeBadRequest, ForgeConflict, ForgeNotFound
from forge.markers import findable
from forge.merge_gateway import PER_PAGE, mr_payload
from forge.mr_types import Discussion, DiscussionNote, FileDiff
from forge.trust import Trust
from forge.types import Approval, MergeRequest
from tests.support.fake_ci import FakeCiCalls
from tests.support.fake_state import BOT, FakeGitLab


class FakeMergeRequests(FakeCiCalls):
    def __init__(self, state: FakeGitLab, calls: AuditedCalls, trust: Trust) -> None:
        self.state = state
        self.calls = calls
        self.trust = trust

    # ------------------------------------------------------------ branches

    async def branch_sha(self, project: str, name: str) -> str | None:
        return self.state.branches.get((project, name))

    async def ensure_branch(self, project: str, name: str, ref: str) -> str:
        existing = await self.branch_sha(project, name)
        if existing is not None:
            return existing

        def create(_: Any, data: dict[str, Any]) -> str:
            sha = self.state.branches.get((project, data["ref"]))
            if sha is None:
                raise ForgeBadRequest("branch.create", "400 Invalid reference name", 400)
            self.state.branches[(project, data["branch"])] = sha
            return sha

        payload = {"branch": name, "ref": ref}
        return await self.calls.write(
            "branch.create", f"{project}@{name}", payload, create, branch_fields=("branch",)
        )

    def push(self, project: str, branch: str) -> str:
        """A new commit on ``branch`` (a test's push): its new head."""
        sha = self.state.sha(branch)
        before = self.state.branches.get((project, branch))
        self.state.ci.parents[sha] = [before] if before else []
        self.state.branches[(project, branch)] = sha
        for mr in self.state.mrs.values():
            if mr["source_branch"] == branch and mr["state"] == "opened":
                mr["sha"] = sha
        return sha

    # ------------------------------------------------------------ merge requests

    async def find_mr(
        self, project: str, source_branch: str, *, state: str = "opened"
    ) -> MergeRequest | None:
        found = [
            mr
            for (where, _), mr in sorted(self.state.mrs.items(), reverse=True)  # newest first
            if where == project
            and mr["source_branch"] == source_branch
            and (state == "all" or mr["state"] == state)
        ]
        return (
            MergeRequest.of(project, self.state.mr_json(project, found[0]["iid"]))
            if found
            else None
        )

    async def get_mr(self, project: str, iid: int) -> MergeRequest:
        return MergeRequest.of(project, self.state.mr_json(project, iid))

    async def approvals(self, project: str, iid: int) -> list[Approval]:
        self.state.mr(project, iid)
        names = self.state.approvals.get((project, iid), [])
        return [Approval.of({"user": self.state.user(name)}) for name in names]

    def approve(self, project: str, iid: int, username: str) -> None:
        """``username`` presses Approve (a test's human)."""
        self.state.approvals.setdefault((project, iid), []).append(username)

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
    ) -> MergeRequest:
        existing = await self.find_mr(project, source_branch)
        if existing is not None:
            return existing
        payload = mr_payload(source_branch, target_branch, title, description, draft, labels)

        def create(_: Any, data: dict[str, Any]) -> MergeRequest:
            return MergeRequest.of(project, self.state.new_mr(project, data, BOT))

        return await self.calls.write(
            "mr.create", f"{project}@{source_branch}", payload, create,
            text_fields=("title", "description"),
            branch_fields=("source_branch", "target_branch"),
        )  # fmt: skip

    async def update_mr(self, project: str, iid: int, **fields: Any) -> MergeRequest:
        def update(_: Any, data: dict[str, Any]) -> dict[str, Any]:
            mr = self.state.mr(project, iid)
            mr.update({key: data[key] for key in ("title", "description") if key in data})
            return self.state.mr_json(project, iid)

        data = await self.calls.write(
            "mr.update", f"{project}!{iid}", fields, update, text_fields=("title", "description")
        )
        return MergeRequest.of(project, data)

    async def merge(
        self, project: str, iid: int, *, sha: str, remove_source_branch: bool = True
    ) -> MergeRequest:
        """Merged only while the head is still ``sha`` (409 otherwise, as GitLab answers)."""
        payload = {"sha": sha, "should_remove_source_branch": remove_source_branch}

        def merge(_: Any, data: dict[str, Any]) -> dict[str, Any]:
            mr = self.state.mr(project, iid)
            if mr["state"] != "opened" or mr["sha"] != data["sha"]:
                raise ForgeConflict("mr.merge", "409 SHA does not match HEAD of source branch")
            mr["state"] = "merged"
            self.state.branches[(project, mr["target_branch"])] = mr["sha"]
            if data["should_remove_source_branch"]:
                self.state.branches.pop((project, mr["source_branch"]), None)
            return self.state.mr_json(project, iid)

        data = await self.calls.write("mr.merge", f"{project}!{iid}", payload, merge)
        return MergeRequest.of(project, data)

    async def diffs(self, project: str, iid: int) -> list[FileDiff]:
        """The diff a test scripted with ``state.diffs[(project, iid)] = [file_diff(...)]``
        (``fake_ci_state.file_diff``): the fake keeps no files to compare, so an MR it was
        not told about has an empty diff."""

        def list_(_: Any) -> list[dict[str, Any]]:
            self.state.mr(project, iid)
            return list(self.state.diffs.get((project, iid), []))

        found = await self.calls.read("mr.diffs", f"{project}!{iid}", {"per_page": PER_PAGE}, list_)
        return [FileDiff.of(item) for item in found]

    # ------------------------------------------------------------ discussions

    async def discussions(self, project: str, iid: int) -> list[Discussion]:
        target = f"{project}!{iid}"

        def list_(_: Any) -> list[Discussion]:
            groups: dict[str, list[dict[str, Any]]] = {}
            for note in self.state.notes_of(project, "mr", iid):
                groups.setdefault(note["discussion_id"], []).append(note)
            return [Discussion.of({"id": key, "notes": notes}) for key, notes in groups.items()]

        found = await self.calls.read("mr.discussions", target, {}, list_)
        return await self.trust.discussions(target, found)

    async def open_discussion(
        self, project: str, iid: int, body: str, *, position: dict[str, Any] | None = None
    ) -> Discussion:
        found_by = findable(body)

        def create(_: Any, data: dict[str, Any]) -> Discussion:
            sent = found_by.sent(data["body"])
            note = self.state.add_note(project, "mr", iid, sent, BOT, resolvable=True)
            note["position"] = data.get("position")
            return Discussion.of({"id": note["discussion_id"], "notes": [note]})

        payload: dict[str, Any] = {"body": body}
        if position is not None:
            payload["position"] = position
        return await self.calls.write(
            "mr.discussion.create", f"{project}!{iid}", payload, create, text_fields=("body",)
        )

    async def reply(self, project: str, iid: int, discussion_id: str, body: str) -> DiscussionNote:
        found_by = findable(body)

        def create(_: Any, data: dict[str, Any]) -> DiscussionNote:
            first = self._thread(project, iid, discussion_id)[0]
            sent = found_by.sent(data["body"])
            note = self.state.add_note(
                project, "mr", iid, sent, BOT,
                discussion=discussion_id, resolvable=first["resolvable"],
            )  # fmt: skip
            return DiscussionNote.of(note)

        target = f"{project}!{iid}/discussion/{discussion_id}"
        return await self.calls.write(
            "mr.discussion.reply", target, {"body": body}, create, text_fields=("body",)
        )

    async def resolve(
        self, project: str, iid: int, discussion_id: str, *, resolved: bool = True
    ) -> None:
        def update(_: Any, data: dict[str, Any]) -> None:
            thread = self._thread(project, iid, discussion_id)
            if not any(note["resolvable"] for note in thread):
                raise ForgeBadRequest("mr.discussion.resolve", "400 not resolvable", 400)
            for note in thread:
                note["resolved"] = data["resolved"]

        target = f"{project}!{iid}/discussion/{discussion_id}"
        await self.calls.write("mr.discussion.resolve", target, {"resolved": resolved}, update)

    def _thread(self, project: str, iid: int, discussion_id: str) -> list[dict[str, Any]]:
        notes = self.state.notes_of(project, "mr", iid)
        thread = [note for note in notes if note["discussion_id"] == discussion_id]
        if not thread:
            raise ForgeNotFound("mr.discussion", "404 Discussion Not Found", 404)
        return thread
