"""Branches, merge requests, discussions, pipelines and merges: the gateway operations of
the developer, review, QA and merge roles. Audited and guarded like every GitLab call; an
MR, a discussion or a reply whose answer is lost is found before it is retried
(docs/decisions/0015)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gitlab
from gitlab.utils import EncodedId

from forge.calls import AuditedCalls
from forge.ci_types import Job, TestReport
from forge.client import ForgeConflict, ForgeNotFound
from forge.markers import findable
from forge.mr_types import Discussion, DiscussionNote, FileDiff
from forge.raw_http import project_path, raw_get, raw_list
from forge.trust import Trust, defang, defang_all
from forge.types import Approval, MergeRequest, Pipeline

PER_PAGE = 100


class MergeGateway:
    def __init__(self, calls: AuditedCalls, trust: Trust | None = None) -> None:
        self.calls = calls
        # Without ``trust`` (a gateway used only to merge) discussions are not read.
        self.trust = trust

    # ------------------------------------------------------------ branches

    async def branch_sha(self, project: str, name: str) -> str | None:
        def get(gl: gitlab.Gitlab) -> str:
            found = raw_get(gl, project_path(project, "repository", "branches", EncodedId(name)))
            return str(found["commit"]["id"])

        try:
            return await self.calls.read("branch.get", f"{project}@{name}", {}, get)
        except ForgeNotFound:
            return None

    async def ensure_branch(self, project: str, name: str, ref: str) -> str:
        """Find-or-create the branch; returns its head sha."""
        existing = await self.branch_sha(project, name)
        if existing is not None:
            return existing

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> str:
            return str(gl.projects.get(project, lazy=True).branches.create(data).commit["id"])

        payload = {"branch": name, "ref": ref}
        return await self.calls.write(
            "branch.create", f"{project}@{name}", payload, create, branch_fields=("branch",)
        )

    # ------------------------------------------------------------ merge requests

    async def find_mr(
        self, project: str, source_branch: str, *, state: str = "opened"
    ) -> MergeRequest | None:
        params: dict[str, Any] = {
            "source_branch": source_branch,
            "state": state,
            "per_page": PER_PAGE,
        }

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            return raw_list(gl, project_path(project, "merge_requests"), params)

        found = await self.calls.read("mr.list", f"{project}@{source_branch}", params, list_)
        return MergeRequest.of(project, found[0]) if found else None

    async def get_mr(self, project: str, iid: int) -> MergeRequest:
        def get(gl: gitlab.Gitlab) -> dict[str, Any]:
            return raw_get(gl, project_path(project, "merge_requests", iid))

        return MergeRequest.of(
            project, await self.calls.read("mr.get", f"{project}!{iid}", {}, get)
        )

    async def approvals(self, project: str, iid: int) -> list[Approval]:
        """Who approved MR ``project!iid`` (GitLab's Approve), and when where GitLab says."""

        def get(gl: gitlab.Gitlab) -> dict[str, Any]:
            mr = gl.projects.get(project, lazy=True).mergerequests.get(iid, lazy=True)
            return dict(mr.approvals.get().attributes)

        found = await self.calls.read("mr.approvals", f"{project}!{iid}", {}, get)
        return [Approval.of(item) for item in found.get("approved_by") or []]

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
        """Find the open MR for the source branch, or create it; a 409 (someone created it
        in between) adopts the existing one, and so does a create whose answer was lost
        (looked up by source branch before any retry)."""
        existing = await self.find_mr(project, source_branch)
        if existing is not None:
            return existing
        payload = mr_payload(source_branch, target_branch, title, description, draft, labels)

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> MergeRequest:
            mr = gl.projects.get(project, lazy=True).mergerequests.create(data)
            return MergeRequest.of(project, dict(mr.attributes))

        async def find_created(_: dict[str, Any]) -> MergeRequest | None:
            return await self.find_mr(project, source_branch)

        try:
            return await self.calls.write(
                "mr.create",
                f"{project}@{source_branch}",
                payload,
                create,
                text_fields=("title", "description"),
                branch_fields=("source_branch", "target_branch"),
                find_existing=find_created,
            )
        except ForgeConflict:
            adopted = await self.find_mr(project, source_branch)
            if adopted is None:
                raise
            return adopted

    async def update_mr(self, project: str, iid: int, **fields: Any) -> MergeRequest:
        def update(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            return dict(gl.projects.get(project, lazy=True).mergerequests.update(iid, data))

        data = await self.calls.write(
            "mr.update", f"{project}!{iid}", fields, update, text_fields=("title", "description")
        )
        return MergeRequest.of(project, data)

    async def merge(
        self, project: str, iid: int, *, sha: str, remove_source_branch: bool = True
    ) -> MergeRequest:
        """Merge only if the head is still ``sha`` (GitLab answers 409 otherwise)."""
        payload = {"sha": sha, "should_remove_source_branch": remove_source_branch}

        def merge(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            mr = gl.projects.get(project, lazy=True).mergerequests.get(iid, lazy=True)
            return dict(mr.merge(**data))

        return MergeRequest.of(
            project, await self.calls.write("mr.merge", f"{project}!{iid}", payload, merge)
        )

    async def diffs(self, project: str, iid: int) -> list[FileDiff]:
        """The MR's file diffs, every page of
        ``GET /merge_requests/:iid/diffs``: ``/changes`` is deprecated since GitLab 15.7 and
        truncates large merge requests."""
        params = {"per_page": PER_PAGE}

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            return raw_list(gl, project_path(project, "merge_requests", iid, "diffs"), params)

        found = await self.calls.read("mr.diffs", f"{project}!{iid}", params, list_)
        return [FileDiff.of(item) for item in found]

    # ------------------------------------------------------------ discussions

    async def discussions(self, project: str, iid: int) -> list[Discussion]:
        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            path = project_path(project, "merge_requests", iid, "discussions")
            return raw_list(gl, path, {"per_page": PER_PAGE})

        if self.trust is None:
            raise RuntimeError("this merge gateway reads no discussions: it has no trust rule")
        target = f"{project}!{iid}"
        found = await self.calls.read("mr.discussions", target, {}, list_)
        return await self.trust.discussions(target, [Discussion.of(d) for d in found])

    async def open_discussion(
        self, project: str, iid: int, body: str, *, position: dict[str, Any] | None = None
    ) -> Discussion:
        """Open a discussion, once even when the answer is lost (found by its marker).
        ``position``: where on the diff (:meth:`forge.mr_types.Position.payload`)."""
        payload: dict[str, Any] = {"body": body}
        if position is not None:
            payload["position"] = position
        found_by = findable(body)

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> Discussion:
            mr = gl.projects.get(project, lazy=True).mergerequests.get(iid, lazy=True)
            sent = {**data, "body": found_by.sent(data["body"])}
            return Discussion.of(dict(mr.discussions.create(sent).attributes))

        async def find_opened(_: dict[str, Any]) -> Discussion | None:
            return next(
                (d for d in await self.discussions(project, iid) if d.carries(found_by.marker)),
                None,
            )

        return await self.calls.write(
            "mr.discussion.create", f"{project}!{iid}", payload, create,
            text_fields=("body",), find_existing=find_opened,
        )  # fmt: skip

    async def reply(self, project: str, iid: int, discussion_id: str, body: str) -> DiscussionNote:
        """Reply in a discussion, once even when the answer is lost (found by its marker)."""
        found_by = findable(body)

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> DiscussionNote:
            mr = gl.projects.get(project, lazy=True).mergerequests.get(iid, lazy=True)
            sent = {**data, "body": found_by.sent(data["body"])}
            thread = mr.discussions.get(discussion_id, lazy=True)
            return DiscussionNote.of(dict(thread.notes.create(sent).attributes))

        async def find_replied(_: dict[str, Any]) -> DiscussionNote | None:
            for discussion in await self.discussions(project, iid):
                if discussion.id == discussion_id:
                    return next((n for n in discussion.notes if found_by.marker in n.body), None)
            return None

        target = f"{project}!{iid}/discussion/{discussion_id}"
        return await self.calls.write(
            "mr.discussion.reply", target, {"body": body}, create,
            text_fields=("body",), find_existing=find_replied,
        )  # fmt: skip

    async def resolve(
        self, project: str, iid: int, discussion_id: str, *, resolved: bool = True
    ) -> None:
        def update(gl: gitlab.Gitlab, data: dict[str, Any]) -> None:
            mr = gl.projects.get(project, lazy=True).mergerequests.get(iid, lazy=True)
            mr.discussions.update(discussion_id, data)

        target = f"{project}!{iid}/discussion/{discussion_id}"
        await self.calls.write("mr.discussion.resolve", target, {"resolved": resolved}, update)

    # ------------------------------------------------------------ pipelines

    async def pipelines(
        self,
        project: str,
        *,
        ref: str | None = None,
        sha: str | None = None,
        status: str | None = None,
    ) -> list[Pipeline]:
        """The newest ``PER_PAGE`` pipelines, newest first: every caller wants the latest
        ones, and a branch like main may have thousands (one page, not the whole history)."""
        params = pipeline_params(ref, sha, status)

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            pipelines = gl.projects.get(project, lazy=True).pipelines
            return [dict(p.attributes) for p in pipelines.list(get_all=False, **params)]

        return [
            Pipeline.of(p) for p in await self.calls.read("pipeline.list", project, params, list_)
        ]

    async def pipeline(self, project: str, pipeline_id: int) -> Pipeline:
        """One pipeline in full (with its ``yaml_errors``)."""

        def get(gl: gitlab.Gitlab) -> dict[str, Any]:
            return dict(gl.projects.get(project, lazy=True).pipelines.get(pipeline_id).attributes)

        return Pipeline.of(
            await self.calls.read("pipeline.get", f"{project}/pipeline/{pipeline_id}", {}, get)
        )

    async def mr_pipelines(self, project: str, iid: int) -> list[Pipeline]:
        """The MR's pipelines, newest first (one page): its source branch's pipelines of its
        commits, and its merge request, merged-results and merge-train pipelines, which run
        on commits that are not the MR's head."""
        params = {"per_page": PER_PAGE}

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            mr = gl.projects.get(project, lazy=True).mergerequests.get(iid, lazy=True)
            found = mr.pipelines.list(get_all=False, per_page=PER_PAGE)
            return [dict(p.attributes) for p in found]

        found = await self.calls.read("mr.pipelines", f"{project}!{iid}", params, list_)
        return [Pipeline.of(p) for p in found]

    async def commit_parents(self, project: str, sha: str) -> list[str]:
        def get(gl: gitlab.Gitlab) -> list[str]:
            commit = gl.projects.get(project, lazy=True).commits.get(sha)
            return [str(parent) for parent in commit.parent_ids or ()]

        return await self.calls.read("commit.get", f"{project}@{sha}", {}, get)

    async def test_report(self, project: str, pipeline_id: int) -> TestReport:
        def get(gl: gitlab.Gitlab) -> dict[str, Any]:
            pipeline = gl.projects.get(project, lazy=True).pipelines.get(pipeline_id, lazy=True)
            return dict(pipeline.test_report.get().attributes)

        report = await self.calls.read(
            "pipeline.test_report", f"{project}/pipeline/{pipeline_id}", {}, get
        )
        return read_report(report)

    async def jobs(self, project: str, pipeline_id: int) -> list[Job]:
        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            pipeline = gl.projects.get(project, lazy=True).pipelines.get(pipeline_id, lazy=True)
            return [
                dict(job.attributes) for job in pipeline.jobs.list(get_all=True, per_page=PER_PAGE)
            ]

        return read_jobs(
            await self.calls.read("pipeline.jobs", f"{project}/pipeline/{pipeline_id}", {}, list_)
        )

    async def job_trace(self, project: str, job_id: int) -> str:
        def trace(gl: gitlab.Gitlab) -> str:
            raw = gl.projects.get(project, lazy=True).jobs.get(job_id, lazy=True).trace()
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

        return read_trace(await self.calls.read("job.trace", f"{project}/job/{job_id}", {}, trace))

    async def retry_job(self, project: str, job_id: int) -> Job:
        """Retry a job, once: GitLab refuses to retry a job already retried, so a retry whose
        answer was lost is found (the newer job of that name in its pipeline), not re-sent."""

        def retry(gl: gitlab.Gitlab, _: dict[str, Any]) -> Job:
            return Job.of(
                dict(gl.projects.get(project, lazy=True).jobs.get(job_id, lazy=True).retry())
            )

        def newer(gl: gitlab.Gitlab) -> Job | None:
            jobs = gl.projects.get(project, lazy=True).jobs
            old = jobs.get(job_id)
            pipeline = gl.projects.get(project, lazy=True).pipelines.get(
                int(old.pipeline["id"]), lazy=True
            )
            listed = pipeline.jobs.list(get_all=True, include_retried=True, per_page=PER_PAGE)
            copies = [Job.of(dict(job.attributes)) for job in listed]
            return min(
                (job for job in copies if job.name == old.name and job.id > job_id),
                key=lambda job: job.id,
                default=None,
            )

        async def find_retried(_: dict[str, Any]) -> Job | None:
            return await self.calls.read("job.retried", f"{project}/job/{job_id}", {}, newer)

        return await self.calls.write(
            "job.retry", f"{project}/job/{job_id}", {}, retry, find_existing=find_retried
        )


def mr_payload(
    source_branch: str,
    target_branch: str,
    title: str,
    description: str,
    draft: bool,
    labels: Sequence[str],
) -> dict[str, Any]:
    """The body that creates an MR: a draft's title starts with "Draft:" (once), and GitLab
    removes the source branch when it merges."""
    payload: dict[str, Any] = {
        "source_branch": source_branch,
        "target_branch": target_branch,
        "title": f"Draft: {title}" if draft and not title.startswith("Draft:") else title,
        "description": description,
        "remove_source_branch": True,
    }
    if labels:
        payload["labels"] = ",".join(labels)
    return payload


def pipeline_params(ref: str | None, sha: str | None, status: str | None) -> dict[str, Any]:
    """The query of a project's pipelines: the newest page, newest first, filtered by
    whichever of ``ref``, ``sha`` and ``status`` is given."""
    params: dict[str, Any] = {"order_by": "id", "sort": "desc", "per_page": PER_PAGE}
    params.update({k: v for k, v in (("ref", ref), ("sha", sha), ("status", status)) if v})
    return params


def read_jobs(found: list[dict[str, Any]]) -> list[Job]:
    # Job names come from the MR's CI configuration: quoted in crewline's notes.
    return [Job.of(job) for job in defang_all(found)]


def read_report(found: dict[str, Any]) -> TestReport:
    # Test names and outputs come from the MR's code: quoted in crewline's notes.
    return TestReport.of(defang_all(found))


def read_trace(raw: str) -> str:
    # Jobs run the MR's code: what they print is quoted in crewline's notes (QA, flaky).
    return defang(raw)
