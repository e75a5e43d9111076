"""The async facade roles use for issues, labels and notes: operations named for what
roles need, each one audited, every write screened by the guard.

Notes crewline writes carry a hidden key (``<!-- crewline:note key=... -->``) and are
looked up by it before posting, so a run that crashes between "post" and "record" and
is started again finds its note instead of posting a second copy.

Every note crewline posts carries a hidden marker that finds it again (:mod:`forge.markers`):
its key, its claim marker, or else a one-off ``<!-- crewline:post id=... -->``. When GitLab's answer to the
POST is lost (a 5xx, a timeout, a reset), the notes are searched for that marker before
any retry, so a lost answer never becomes a second copy (docs/decisions/0015).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import gitlab

from forge.access import AccessLevels
from forge.calls import AuditedCalls, AuditSink
from forge.ci_history import CiHistory
from forge.client import GitLabClient
from forge.gateway_issues import IssueOps
from forge.gateway_issues import StaleState as StaleState
from forge.gateway_notes import EDITED as EDITED
from forge.gateway_notes import PER_PAGE
from forge.gateway_notes import Noteable as Noteable
from forge.guard import Guard
from forge.issue_index import IssueIndex
from forge.markers import NOTE_MARKER as NOTE_MARKER  # roles import the markers from here
from forge.markers import note_marker as note_marker
from forge.merge_gateway import MergeGateway
from forge.own_writes import OwnWrites
from forge.pending_notes import PendingNotes
from forge.raw_http import project_path, raw_get, raw_list, raw_put
from forge.trust import Trust
from forge.types import Issue, LabelEvent
from workflow import UnknownState, Workflow


class Gateway(IssueOps):
    def __init__(
        self,
        client: GitLabClient,
        *,
        guard: Guard,
        audit: AuditSink | None,
        workflow: Workflow,
        who: str,
    ) -> None:
        self.calls = AuditedCalls(client, guard, audit, who)
        self.workflow = workflow
        # Everything read back from GitLab passes through ``trust``: only crewline's own
        # users' notes and descriptions keep their hidden markers.
        self.trust = Trust(self.calls, editors=self.description_editor)
        self.merges = MergeGateway(self.calls, self.trust)
        self.ci = CiHistory(self.calls)
        self.access = AccessLevels(self.member_access_level)
        self._project_ids: dict[str, int] = {}
        # One listing per pass, shared by the engine, the janitor and the gates; closed
        # issues are kept where a human may have merged their MR (the janitor's case).
        self.issues = IssueIndex(self, keep_closed=merge_states(workflow))
        # The echo of our own writes wakes nothing; listeners hear of our moves directly.
        self.own_writes = OwnWrites()
        self.moved: list[Callable[[Issue], None]] = []
        # Copy checks of keyed notes owed after a crash; the wiring gives it the database.
        self.pending_notes = PendingNotes()

    async def project_id(self, project: str) -> int:
        """The numeric id of ``project`` (a path), asked once per process: it never changes."""
        if project not in self._project_ids:

            def get(gl: gitlab.Gitlab) -> int:
                return int(gl.projects.get(project).id)

            self._project_ids[project] = await self.calls.read("project.get", project, {}, get)
        return self._project_ids[project]

    @property
    def url(self) -> str:
        return self.calls.client.url

    # ------------------------------------------------------------ issues

    async def create_issue(
        self, project: str, title: str, description: str, labels: Sequence[str] = ()
    ) -> Issue:
        payload = {"title": title, "description": description, "labels": ",".join(labels)}

        def create(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            return dict(gl.projects.get(project, lazy=True).issues.create(data).attributes)

        # No lookup can tell a lost answer from a refusal here: not retried blindly.
        data = await self.calls.write(
            "issue.create",
            project,
            payload,
            create,
            text_fields=("title", "description"),
            once=True,
        )
        issue = Issue.of(project, data)
        self.trust.wrote(issue.ref, issue.description)
        return issue

    def _issue_reader(self, project: str, iid: int) -> Callable[[Any], dict[str, Any]]:
        """The one raw read behind :meth:`get_issue` (an in-memory fake swaps it)."""
        return lambda gl: raw_get(gl, project_path(project, "issues", iid))

    def _issue_lister(
        self, project: str, params: dict[str, Any]
    ) -> Callable[[Any], list[dict[str, Any]]]:
        """The one raw read behind :meth:`list_issues` (an in-memory fake swaps it)."""
        return lambda gl: raw_list(gl, project_path(project, "issues"), params)

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
        payload = update_payload(add_labels, remove_labels, state_event, description)

        def update(gl: gitlab.Gitlab, data: dict[str, Any]) -> dict[str, Any]:
            return raw_put(gl, project_path(project, "issues", iid), data)

        data = await self.calls.write(
            "issue.update", f"{project}#{iid}", payload, update, text_fields=("description",)
        )
        return await self.updated(project, data, wrote_description=description is not None)

    async def label_events(self, project: str, iid: int) -> list[LabelEvent]:
        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            path = project_path(project, "issues", iid, "resource_label_events")
            return raw_list(gl, path, {"per_page": PER_PAGE})

        events = await self.calls.read("issue.label_events", f"{project}#{iid}", {}, list_)
        return sorted((LabelEvent.of(e) for e in events), key=lambda e: e.id)

    async def blocked_by(self, project: str, iid: int) -> list[int]:
        """The iids of the issues in ``project`` linked as blocking this one ("is blocked by",
        seen from this issue). A "relates to" link is no dependency: it is mutual, so both
        issues would wait for each other."""

        def list_(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            path = project_path(project, "issues", iid, "links")
            return raw_list(gl, path, {"per_page": PER_PAGE})

        linked = await self.calls.read("issue.links", f"{project}#{iid}", {}, list_)
        blockers = [item for item in linked if item.get("link_type") == "is_blocked_by"]
        if not blockers:
            return []
        here = await self.project_id(project)  # GitLab names a linked issue's project by id
        return [int(item["iid"]) for item in blockers if int(item.get("project_id", 0)) == here]

    async def member_access_level(self, project: str, username: str) -> int:
        """``username``'s effective access level on ``project`` (inherited membership and
        administrators included); 0 when the user is unknown or not a member."""

        def get(gl: gitlab.Gitlab) -> int:
            users = raw_list(gl, "/users", {"username": username}, all_pages=False)
            if not users:
                return 0
            try:
                member = raw_get(gl, project_path(project, "members", "all", users[0]["id"]))
            except gitlab.exceptions.GitlabHttpError as error:
                if error.response_code == 404:
                    return 0
                raise
            return int(member["access_level"])

        return await self.calls.read("member.access_level", project, {"username": username}, get)


def update_payload(
    add_labels: Sequence[str],
    remove_labels: Sequence[str],
    state_event: str | None,
    description: str | None,
) -> dict[str, Any]:
    """The body of :meth:`Gateway.update_issue`: only what changes (an empty description
    is a change: it clears the description)."""
    listed = {"add_labels": add_labels, "remove_labels": remove_labels}
    payload: dict[str, Any] = {key: ",".join(names) for key, names in listed.items() if names}
    if state_event:
        payload["state_event"] = state_event
    if description is not None:
        payload["description"] = description
    return payload


def merge_states(workflow: Workflow) -> list[str]:
    """The states an issue waits in while its MR is open (a hand merge closes the issue)."""
    labels = []
    for kind, name in (("ready", "review"), ("ready", "qa"), ("gate", "merge")):
        with contextlib.suppress(UnknownState):
            state = workflow.ready_state(name) if kind == "ready" else workflow.gate_state("merge")
            labels.append(state.label)
    return labels
