"""Gates decided in GitLab itself: a 👍 on crewline's plan note approves the plan, a reply
in the plan note's thread requests changes (the reply is the feedback), GitLab's Approve on
the merge request at its current head approves the merge (decision record 0023).

The engine looks at every issue waiting at a gate once per poll (and at once when an
emoji or merge request webhook wakes it). A reaction or approval counts when its author
passes the desk rules (``roles/gates/desk_rules.py``: a person with ``min_approver_access``, not
the filer for a merge when ``require_second_person``) and it is about the current revision:
the newest plan note, or an approval given after QA passed the MR's current head (GitLab's
approvals API says when, ``approved_at``; it does not say at which sha). The decision goes
through ``roles/gates/decide.py`` like any other surface's, so it is written as the usual keyed
decision note naming the GitLab user and applied exactly once; each verdict is audited as
``desk.decide.<gate>`` by ``gitlab:@user``, once per reaction or approval and process.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from forge.types import Issue, MergeRequest, Note
from roles.context import Services
from roles.gates.decide import Decision, decide_merge, decide_plan
from roles.gates.desk_rules import access_refusal
from roles.mr_link import named_mr, qa_passed_marker
from roles.pm.plan_notes import latest_plan

log = logging.getLogger(__name__)

APPROVE_EMOJI = "thumbsup"
VIA_EMOJI = "GitLab (👍 on the plan)"
VIA_APPROVE = "GitLab (Approve on the merge request)"
VIA_REPLY = "GitLab (a reply to the plan)"


class GitLabGates:
    """Reads the reactions and approvals of issues waiting at a gate and decides with them."""

    def __init__(self, services: Services) -> None:
        self.services = services
        # (project, iid, gate, revision, user) already judged by this process: a refusal is
        # audited once, not once per poll.
        self._judged: set[tuple[str, int, str, str, str, bool]] = set()

    async def look(self, issue: Issue, gate: str) -> Decision | None:
        """Decide ``issue`` at ``gate`` from what GitLab shows; the applied decision, else
        None (nothing that counts yet)."""
        wf = self.services.workflow
        if gate == wf.gate_state("plan").name:
            return await self._plan(issue)
        if gate == wf.gate_state("merge").name:
            return await self._merge(issue)
        return None

    async def _plan(self, issue: Issue) -> Decision | None:
        gateway = self.services.gateway
        current = latest_plan(list(await self.services.notes_of(issue)))
        if current is None:
            return None
        note = current[0]
        awards = await gateway.note_awards(issue.project, issue.iid, note.id)
        replies = await gateway.note_replies(issue.project, issue.iid, note.id)
        # (when, who, approve, feedback): the first that counts decides. A reply's text is
        # someone's words (the gateway already removed any marker): only ever quoted as feedback.
        said = [(_instant(a.created_at), a.user, True, "") for a in awards
                if a.name == APPROVE_EMOJI]  # fmt: skip
        said += [(_instant(r.created_at), r.author, False, r.body) for r in replies
                 if not r.system and r.body.strip()]  # fmt: skip
        for _, user, approve, feedback in sorted(said, key=lambda item: item[0]):
            decision = await self._judge(issue, "plan", str(note.id), user, approve, feedback)
            if decision is not None and decision.applied:
                return decision
        return None

    async def _merge(self, issue: Issue) -> Decision | None:
        gateway = self.services.gateway
        notes = list(await self.services.notes_of(issue))
        mr = await named_mr(gateway, issue.project, notes)
        if mr is None or mr.state != "opened":
            return None  # no MR yet (asked again once the issue changes), or no longer open
        since = _qa_passed_at(notes, mr)
        if since is None:
            return None  # QA has not passed this head: nothing to approve yet
        for approval in await gateway.merges.approvals(issue.project, mr.iid):
            # Given before QA passed this head (or GitLab does not say when): possibly an
            # approval of an older head, which GitLab keeps across pushes. It does nothing.
            if not approval.approved_at or _instant(approval.approved_at) < since:
                continue
            decision = await self._judge(issue, "merge", mr.sha, approval.user)
            if decision is not None and decision.applied:
                return decision
        return None

    async def _judge(
        self,
        issue: Issue,
        gate: str,
        revision: str,
        user: str,
        approve: bool = True,
        feedback: str = "",
    ) -> Decision | None:
        key = (issue.project, issue.iid, gate, revision, user, approve)
        if key in self._judged:
            return None
        services = self.services
        project = services.projects[issue.project]
        target, what = issue.ref, f"desk.decide.{gate}"
        payload = {"revision": revision, "approve": approve, "feedback": feedback, "via": "gitlab"}
        refused = await access_refusal(
            services.gateway, issue.project, user, project.min_approver_access
        )
        if refused is not None:
            self._judged.add(key)
            await services.storage.audit.append(
                f"gitlab:@{user}", what, target, {**payload, "why": refused}, "denied"
            )
            log.info("gate decision refused: issue=%s gate=%s: %s", issue.ref, gate, refused)
            return None
        if gate == "plan":
            decision = await decide_plan(
                services.gateway, services.storage.leases, issue.project, issue.iid,
                revision=revision, approve=approve, who=f"@{user}",
                via=VIA_EMOJI if approve else VIA_REPLY, worker=services.worker,
                feedback=feedback,
            )  # fmt: skip
        else:
            decision = await decide_merge(
                services.gateway, services.storage.leases, issue.project, issue.iid,
                revision=revision, approve=True, who=f"@{user}", via=VIA_APPROVE,
                worker=services.worker, approver=user, merger=services.merger,
                require_second_person=project.require_second_person,
            )  # fmt: skip
        if decision.pending:
            return decision  # not applied and the gate still waits: judged again next poll
        self._judged.add(key)
        verdict = "ok" if decision.applied else "unchanged"
        await services.storage.audit.append(
            f"gitlab:@{user}", what, target, {**payload, "why": decision.message}, verdict
        )
        log.info("gate decided in GitLab: issue=%s gate=%s by=@%s: %s", issue.ref, gate, user,
                 decision.message)  # fmt: skip
        return decision


def _qa_passed_at(notes: list[Note], mr: MergeRequest) -> datetime | None:
    """When QA passed ``mr`` at its current head (crewline's own note says so), else None."""
    marker = qa_passed_marker(mr.sha)
    found = [_instant(n.created_at) for n in notes if n.by_crewline and marker in n.body]
    return max(found) if found else None


def _instant(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
