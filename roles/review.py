"""The review role (review-ready -> review-running -> qa-ready): every thread closed.

Per round: an AI review of the MR's current head (once per head sha; each finding becomes a
resolvable discussion on its file and line, a clean review says so in a note); then a
feedback pass over every unresolved discussion, human or AI, in the MR's worktree and the
same agent session: the fix is validated (the developer's gate) and pushed with
``--force-with-lease``, each discussion gets a reply saying what changed and is resolved; a
discussion the agent disagrees with gets the reason and stays open for a human.

No unresolved discussions and a clean review at the current head -> qa-ready. Rounds
exhausted, or only disagreements left -> blocked for a human, with the open threads listed.
Fixes that no longer pass validation -> back to the developer.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from forge.client import ForgeBadRequest
from forge.gateway import note_marker
from forge.guard import GuardBlocked
from forge.mr_types import Discussion, Position
from forge.sink import seal
from forge.types import Issue, MergeRequest
from roles.agent_turn import Turn, ask_agent
from roles.agents.base import TaskKind
from roles.authors import heard_discussions
from roles.compaction import LEARNINGS_FORMAT
from roles.context import RunContext, Services
from roles.delivery import Delivery, guard_stop, issue_worktree, project_checks
from roles.engine.loop import Admission, RoleResult
from roles.mr_link import named_mr
from roles.pm.plan_notes import PlanNotApproved, approved_plan
from roles.pm.role import budget_admission
from roles.prompts import Prompts
from roles.untrusted import Fence
from roles.workspace.worktree import Worktree
from workflow import Outcome

log = logging.getLogger(__name__)

_REVIEW = re.compile(r"```crewline-review[^\n]*\n(.*?)\n```", re.S)
_REPLIES = re.compile(r"```crewline-replies[^\n]*\n(.*?)\n```", re.S)
MAX_DIFF_CHARS = 60_000


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    body: str


@dataclass(frozen=True)
class Thread:
    id: str
    body: str
    author: str
    path: str | None
    line: int | None


def parse_findings(output: str) -> list[Finding] | None:
    """The findings of a review answer; None when the answer has no readable block."""
    blocks = _REVIEW.findall(output)
    if not blocks:
        return None
    try:
        data = json.loads(blocks[-1])
    except json.JSONDecodeError:
        return None
    findings = []
    for item in data.get("findings", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and item.get("body") and item.get("path"):
            line = item.get("line")
            findings.append(
                Finding(
                    str(item["path"]), int(line) if isinstance(line, int) else 1, str(item["body"])
                )
            )
    return findings


def parse_replies(output: str) -> dict[str, tuple[str, str]]:
    """discussion id -> (action "fixed" | "disagree", reply text)."""
    blocks = _REPLIES.findall(output)
    if not blocks:
        return {}
    try:
        data = json.loads(blocks[-1])
    except json.JSONDecodeError:
        return {}
    replies = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        action, reply = item.get("action"), str(item.get("reply") or "").strip()
        if item.get("discussion") and action in ("fixed", "disagree") and reply:
            replies[str(item["discussion"])] = (str(action), reply)
    return replies


def unresolved(discussions: list[Discussion]) -> list[Thread]:
    threads = []
    for discussion in discussions:
        first = discussion.first
        if first is None or not discussion.unresolved:
            continue
        position = first.position
        said = "\n\n".join(f"@{note.author or '?'}: {note.body}" for note in discussion.notes)
        threads.append(
            Thread(
                id=discussion.id,
                body=said,
                author=first.author,
                path=(position.new_path or None) if position is not None else None,
                line=position.new_line if position is not None else None,
            )
        )
    return threads


class ReviewRole:
    name = "review"

    def __init__(self, prompts: Prompts) -> None:
        self.prompts = prompts

    async def admit(self, services: Services, issue: Issue) -> Admission:
        return await budget_admission(services, issue)

    async def run(self, ctx: RunContext) -> RoleResult:
        notes = await ctx.notes_at_start()  # one read serves the MR link and the plan
        mr = await named_mr(ctx.gateway, ctx.issue.project, notes)
        if mr is None:
            return RoleResult(Outcome.BLOCKED, "No merge request found for this issue.")
        if mr.state == "merged":
            return RoleResult(Outcome.MERGED, f"!{mr.iid} was merged by hand.")
        try:
            _, plan = approved_plan(notes)
        except PlanNotApproved as refused:
            return RoleResult(Outcome.BLOCKED, f"The review did not start: {refused}.")
        acceptance, plan_text = plan.acceptance, plan.to_markdown()
        async with issue_worktree(ctx) as wt:
            try:
                delivery = Delivery(self.prompts, ctx, wt, project_checks(ctx, acceptance))
                return await _Rounds(self.prompts, ctx, delivery, plan_text).run(mr)
            except GuardBlocked as blocked:
                return guard_stop(blocked)


class _Rounds:
    def __init__(self, prompts: Prompts, ctx: RunContext, delivery: Delivery, plan: str) -> None:
        self.prompts = prompts
        self.ctx = ctx
        self.delivery = delivery
        self.plan = plan
        self.session: str | None = None
        self.disagreed: set[str] = set()

    @property
    def wt(self) -> Worktree:
        return self.delivery.wt

    async def run(self, mr: MergeRequest) -> RoleResult:
        merges, rounds = self.ctx.gateway.merges, self.ctx.services.roles.review_rounds
        for round_ in range(1, rounds + 2):
            if round_ > 1:  # the first round reviews the MR as the run just read it
                mr = await merges.get_mr(mr.project, mr.iid)
            await self._review_head(mr, round_)
            discussions = await heard_discussions(
                self.ctx.services, self.ctx.project, await merges.discussions(mr.project, mr.iid)
            )
            threads = unresolved(discussions)
            open_threads = [t for t in threads if t.id not in self.disagreed]
            if not open_threads:
                if self.disagreed:
                    return self._blocked(threads, "the agent disagrees; a human decides")
                return RoleResult(Outcome.SUCCEEDED)
            if round_ > rounds:
                return self._blocked(threads, f"{rounds} review rounds did not close them")
            stopped = await self._address(mr, open_threads, round_)
            if stopped is not None:
                return stopped
        raise AssertionError("unreachable: the last round returns")

    def _blocked(self, threads: list[Thread], why: str) -> RoleResult:
        listed = "\n".join(f"- `{t.id[:8]}` {t.body.splitlines()[0][:200]}" for t in threads)
        return RoleResult(Outcome.BLOCKED, f"Open review discussions ({why}):\n\n{listed}")

    async def _review_head(self, mr: MergeRequest, round_: int) -> None:
        """The AI review of this head sha, once, whichever run or host gets here first."""
        ctx, merges = self.ctx, self.ctx.gateway.merges
        key = f"review:{mr.sha[:12]}"
        # One read serves the look before the review and the one before posting its note:
        # another round's run cannot post this key meanwhile (one claim at a time).
        notes = await ctx.gateway.notes(mr.project, mr.iid, on="mr")
        if await ctx.gateway.find_note(mr.project, mr.iid, key, on="mr", known=notes):
            return
        changes = await merges.diffs(mr.project, mr.iid)
        diff = "\n\n".join(
            f"--- {change.old_path}\n+++ {change.new_path}\n{change.diff}" for change in changes
        )[:MAX_DIFF_CHARS]
        fence = Fence([ctx.issue.title, diff])
        prompt = self.prompts.render(
            "review",
            untrusted_notice=fence.notice(),
            mr_iid=mr.iid,
            project=mr.project,
            branch=mr.source_branch,
            iid=ctx.issue.iid,
            title=fence.inline(ctx.issue.title),
            plan=self.plan,
            diff=fence.wrap(f"```diff\n{diff}\n```", "the change"),
        )
        turn = await ask_agent(
            ctx, f"r{round_}-review-{mr.sha[:12]}", TaskKind.REVIEW, prompt, self.wt.path,
            session_id=self.session,
        )  # fmt: skip
        self.session = turn.session_id or self.session
        findings = parse_findings(turn.output)
        if findings is None:
            summary = f"AI review of `{mr.sha[:10]}`: the agent's answer had no readable findings block; treated as clean."
        else:
            await self._open_findings(mr, findings)
            summary = (
                f"AI review of `{mr.sha[:10]}`: {len(findings)} finding(s), opened as discussions."
                if findings
                else f"AI review of `{mr.sha[:10]}`: clean, nothing to change."
            )
        await ctx.gateway.upsert_note(mr.project, mr.iid, key, summary, on="mr", known=notes)

    async def _open_findings(self, mr: MergeRequest, findings: list[Finding]) -> None:
        if not findings:  # a clean review opens nothing: no need to look at what is open
            return
        merges = self.ctx.gateway.merges
        existing = " ".join(
            note.body
            for discussion in await merges.discussions(mr.project, mr.iid)
            for note in discussion.notes
        )
        refs = mr.diff_refs
        for n, finding in enumerate(findings, 1):
            marker = note_marker(f"finding:{mr.sha[:12]}:{n}")
            if marker in existing:
                continue
            position = None
            if refs is not None:
                position = Position.on_new_line(refs, finding.path, finding.line).payload()
            body = f"{finding.body}\n\n{seal(marker)}"
            try:
                await merges.open_discussion(mr.project, mr.iid, body, position=position)
            except ForgeBadRequest as refused:
                if position is None:
                    raise
                # GitLab places a diff note only on a line of the diff (and a context line
                # needs its old line too); elsewhere it answers 400. The finding still counts:
                # a discussion on the MR itself, naming the place.
                log.info(
                    "review: %s line %s is not on the diff of !%s (%s); posting it unplaced",
                    finding.path, finding.line, mr.iid, refused,
                )  # fmt: skip
                placed = f"`{finding.path}` line {finding.line}: {body}"
                await merges.open_discussion(mr.project, mr.iid, placed)

    async def _address(
        self, mr: MergeRequest, threads: list[Thread], round_: int
    ) -> RoleResult | None:
        ctx = self.ctx
        fence = Fence(t.body for t in threads)
        listed = "\n\n".join(
            f"### Discussion `{t.id}`"
            + (f" on `{t.path}` line {t.line}" if t.path else "")
            + f"\n\n{fence.wrap(t.body, 'the discussion')}"
            for t in threads
        )
        prompt = self.prompts.render(
            "address",
            untrusted_notice=fence.notice(),
            mr_iid=mr.iid,
            branch=mr.source_branch,
            discussions=listed,
            learnings_format=LEARNINGS_FORMAT,
        )
        turn = await self.delivery.agent_and_push(
            f"r{round_}-address", TaskKind.FIX, prompt, self.session
        )
        self.session = turn.session_id or self.session
        converged = await self.delivery.converge(
            turn, ctx.services.roles.dev.max_attempts, prefix=f"r{round_}-"
        )
        if isinstance(converged, RoleResult):
            return RoleResult(
                Outcome.REJECTED,
                f"The review fixes no longer pass validation; back to the developer.\n\n{converged.message}",
            )
        await self.delivery.learnings(converged.turn, prefix=f"r{round_}-")
        await self._reply(mr, threads, _replies_of(turn, converged.turn))
        return None

    async def _reply(
        self, mr: MergeRequest, threads: list[Thread], replies: dict[str, tuple[str, str]]
    ) -> None:
        merges = self.ctx.gateway.merges
        head = (self.delivery.remote or mr.sha)[:10]
        current = {d.id: d for d in await merges.discussions(mr.project, mr.iid)}
        for thread in threads:
            answer = replies.get(thread.id)
            if answer is None:
                continue  # not addressed: it stays open for the next round
            action, text = answer
            marker = note_marker(f"reply:{thread.id[:12]}:{head}")
            replied = current.get(thread.id)
            if replied is None or not replied.carries(marker):
                prefix = f"Fixed in `{head}`" if action == "fixed" else "Not changed"
                await merges.reply(
                    mr.project, mr.iid, thread.id, f"{prefix}: {text}\n\n{seal(marker)}"
                )
            if action == "fixed":
                await merges.resolve(mr.project, mr.iid, thread.id)
            else:
                self.disagreed.add(thread.id)


def _replies_of(*turns: Turn) -> dict[str, tuple[str, str]]:
    replies: dict[str, tuple[str, str]] = {}
    for turn in turns:
        replies.update(parse_replies(turn.output))
    return replies
