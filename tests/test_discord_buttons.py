"""Approval cards, Request-changes and Answer modals, clicked through discord.py's own
dispatch of dynamic items (fake Interaction, real desk, simulator, SQLite): stale, repeated
and unauthorised clicks change nothing, and a new client handles an old card's buttons."""

from __future__ import annotations

from pathlib import Path

from bot.discord.cards import gate_card
from bot.discord.render import NO_MENTIONS
from bot.discord.views import FeedbackModal, gate_view, question_view
from roles.notify import GateRequest
from sim.core.app import RunningSim
from tests.support.desk import (
    ALICE,
    BOB,
    NOBODY,
    RITA,
    actor,
    ask,
    at_merge_ready,
    at_plan_review,
    bodies,
    client,
    new_issue,
    post_plan,
    walk,
)
from tests.support.discord_desk import bot_for, new_bot, user
from tests.support.discord_fakes import FakeDiscord, FakeMessage, click, submit
from tests.support.engine import PROJECT, state_of


async def post_card(
    world: FakeDiscord, iid: int, revision: str, summary: str = "### Plan\n\nHi."
) -> FakeMessage:
    gate = GateRequest(
        PROJECT, iid, "Add a greeting", "plan-review", revision, summary, "http://gl/x"
    )
    return await world.channel(600).send(
        embed=gate_card(gate, "plan", 0.42),
        view=gate_view(PROJECT, iid, "plan", revision),
        allowed_mentions=NO_MENTIONS,
    )


async def test_approve_edits_the_card_and_a_second_click_changes_nothing(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        issue, plan = await at_plan_review(runtime)
        card = await post_card(FakeDiscord(), issue.iid, str(plan.id))
        approve, reject = card.custom_ids
        seen = card.as_seen()  # another approver's screen, before the card is edited
        assert approve == f"cl:g:{approve.split(':')[2]}:1:plan:{plan.id}:a" and len(approve) <= 100

        outsider = await click(bot, card, approve, user(RITA))
        assert "Reporter access" in outsider.refused and not card.edits
        clicked = await click(bot, card, approve, user(ALICE))
        assert clicked.response.calls == [("defer", {"ephemeral": True, "thinking": True})]
        assert clicked.followup.text == "Plan approved by @alice via Discord."
        assert await state_of(runtime, issue.iid) == "dev-ready"
        [edit] = card.edits
        assert edit["view"] is None and card.components == []
        decision = card.embeds[0].fields[-1]
        assert decision.name == "Decision"
        assert "Plan approved by @alice via Discord." in decision.value
        assert "@alice (Alice on Discord), 20" in decision.value

        again = await click(bot, seen, approve, user(BOB))
        assert again.refused.startswith("already decided at ")
        assert again.refused.endswith("Plan approved by @alice via Discord.")
        late = await click(bot, seen, reject, user(BOB))  # opens the modal; the desk refuses
        await submit(late.modal, late, feedback="Too late")
        assert len(card.edits) == 1 and await state_of(runtime, issue.iid) == "dev-ready"
        assert sum("approved by" in body for body in await bodies(runtime, issue.iid)) == 1


async def test_request_changes_takes_feedback_in_a_modal(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        issue, plan = await at_plan_review(runtime)
        card = await post_card(FakeDiscord(), issue.iid, str(plan.id))
        _, reject = card.custom_ids
        stranger = await click(bot, card, reject, user(NOBODY))
        assert "not mapped to a GitLab user" in stranger.refused
        no_role = await click(bot, card, reject, user(ALICE, approver=False))
        assert "none of the approver roles" in no_role.refused
        opened = await click(bot, card, reject, user(ALICE))
        assert isinstance(opened.modal, FeedbackModal)
        submitted = await submit(opened.modal, opened, feedback="Greet in **French** <@42>")
        assert submitted.followup.text == "Plan changes requested by @alice via Discord."
        assert await state_of(runtime, issue.iid) == "pm-ready"
        note = next(b for b in await bodies(runtime, issue.iid) if "changes requested" in b)
        assert "> Greet in **French** <@42>" in note
        assert "changes requested" in card.embeds[0].fields[-1].value.lower()


async def test_a_click_on_an_older_plan_is_stale(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        issue, old = await at_plan_review(runtime)
        world = FakeDiscord()
        old_card = await post_card(world, issue.iid, str(old.id))
        await walk(runtime, issue.iid, "pm-ready", "pm-running")
        newer = await post_plan(runtime, issue.iid, attempt=2, summary="Better.")
        await walk(runtime, issue.iid, "plan-review")
        stale = await click(bot, old_card, old_card.custom_ids[0], user(ALICE))
        assert stale.refused == f"stale: plan {old.id} is not the newest plan of demo/app#1"
        assert not old_card.edits and await state_of(runtime, issue.iid) == "plan-review"
        new_card = await post_card(world, issue.iid, str(newer.id))
        fresh = await click(bot, new_card, new_card.custom_ids[0], user(ALICE))
        assert fresh.followup.text == "Plan approved by @alice via Discord."


async def test_a_new_client_handles_an_old_cards_buttons(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (first, desk, runtime):
        issue, plan = await at_plan_review(runtime)
        card = await post_card(FakeDiscord(), issue.iid, str(plan.id))
        await first.close()  # the process that posted the card is gone
        restarted = await new_bot(desk)
        try:
            assert restarted is not first
            clicked = await click(restarted, card, card.custom_ids[0], user(BOB))
        finally:
            await restarted.close()
        assert clicked.followup.text == "Plan approved by @bob via Discord."
        assert await state_of(runtime, issue.iid) == "dev-ready"


async def test_answer_button_posts_the_answer_and_resumes(sim: RunningSim, tmp_path: Path) -> None:
    async with bot_for(sim, tmp_path) as (bot, _, runtime):
        issue = await new_issue(runtime)
        await walk(runtime, issue.iid, "pm-running")
        question = await ask(runtime, issue.iid, "pm-1", "Which greeting?")
        await walk(runtime, issue.iid, "needs-input")
        posted = (
            await FakeDiscord()
            .channel(1)
            .send(
                "Which greeting?",
                view=question_view(PROJECT, 1, question.id),
                allowed_mentions=NO_MENTIONS,
            )
        )
        [answer] = posted.custom_ids
        stranger = await click(bot, posted, answer, user(NOBODY))
        assert "not mapped" in stranger.refused
        opened = await click(bot, posted, answer, user(RITA))
        refused = await submit(opened.modal, opened, answer="Hi")
        assert "Reporter access" in refused.refused and await state_of(runtime, 1) == "needs-input"
        opened = await click(bot, posted, answer, user(ALICE))
        submitted = await submit(opened.modal, opened, answer="Hello, world")
        assert submitted.followup.text == "answer posted on demo/app#1; resumed at pm-ready"
        assert await state_of(runtime, 1) == "pm-ready"
        assert any(
            b.startswith("Answer from @alice via Discord:\n\nHello, world")
            for b in await bodies(runtime, 1)
        )
        assert posted.components == [] and "Answered by @alice (Alice on Discord)" in posted.content


async def test_merge_card_refuses_the_filer_and_merges_for_a_second_person(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path, repo=True) as (bot, desk, runtime):
        await desk.file_goal(
            actor(ALICE), title="Greet", description="", criteria="", request_id="g"
        )
        mr = await at_merge_ready(runtime, 1)
        gate = GateRequest(
            PROJECT, 1, "Greet", "merge-ready", mr.sha, "!1: pipeline passed", mr.web_url
        )
        card = (
            await FakeDiscord()
            .channel(600)
            .send(
                embed=gate_card(gate, "merge", 1.25),
                view=gate_view(PROJECT, 1, "merge", mr.sha),
                allowed_mentions=NO_MENTIONS,
            )
        )
        approve = card.custom_ids[0]
        assert approve.endswith(f":merge:{mr.sha}:a") and len(approve) <= 100
        own = await click(bot, card, approve, user(ALICE))
        assert own.refused == "@alice filed this goal and cannot approve its merge"
        assert not card.edits and await state_of(runtime, 1) == "merge-ready"
        merged = await click(bot, card, approve, user(BOB))
        assert merged.followup.text.endswith("approved by @bob via Discord. Merged.")
        assert await state_of(runtime, 1) == "done" and card.components == []


async def test_a_merge_gitlab_forbids_keeps_the_card_open_with_gitlabs_reason(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with bot_for(sim, tmp_path, repo=True) as (bot, _, runtime):
        await new_issue(runtime, "Greet")
        mr = await at_merge_ready(runtime, 1)
        maintainer = client(runtime, "sim-maintainer-token").mergerequests.get(mr.iid)
        maintainer.approvals.update(new_data={"approvals_required": 1})  # a rule in GitLab
        gate = GateRequest(PROJECT, 1, "Greet", "merge-ready", mr.sha, "!1: passed", mr.web_url)
        card = (
            await FakeDiscord()
            .channel(600)
            .send(
                embed=gate_card(gate, "merge", 1.25),
                view=gate_view(PROJECT, 1, "merge", mr.sha),
                allowed_mentions=NO_MENTIONS,
            )
        )
        approve = card.custom_ids[0]
        refused = await click(bot, card, approve, user(BOB))
        reason = "403 Forbidden - Merge request requires 1 more approval(s)"
        assert f"GitLab refused the merge (403: {reason})" in refused.followup.text
        assert await state_of(runtime, 1) == "merge-ready"
        [edit] = card.edits
        assert "view" not in edit and card.custom_ids[0] == approve  # the buttons stay
        [field] = [f for f in card.embeds[0].fields if f.name == "Not applied"]
        assert reason in field.value and "@bob (Bob on Discord)" in field.value
        assert sum(reason in body for body in await bodies(runtime, 1)) == 1

        maintainer.approve(sha=mr.sha)  # the approval GitLab wanted
        merged = await click(bot, card, approve, user(BOB))
        assert merged.followup.text.endswith("approved by @bob via Discord. Merged.")
        assert await state_of(runtime, 1) == "done" and card.components == []
        assert [f.name for f in card.embeds[0].fields].count("Not applied") == 1
