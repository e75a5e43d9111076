"""End to end through review, QA and the merge gate, against the simulator's real
pipelines: AI findings fixed and resolved, a human's thread answered, review rounds
running out, and the merge decision (moved heads, GitLab refusing, the filer's own
approval, a merge by hand)."""

from __future__ import annotations

from pathlib import Path

from forge.sink import seal
from roles.engine.janitor import sweep
from roles.gates.decide import filer_marker
from roles.notify import EventKind
from sim.core.app import RunningSim
from tests.support.engine import (
    PROJECT,
    fake_agent,
    file_goal,
    note_bodies,
    reach,
    state_of,
)
from tests.support.review_merge import (
    GREET,
    as_maintainer,
    commit,
    decide,
    file_on,
    full_config,
    greet_at_merge_ready,
    greet_goal,
    inject_fault,
    issue_mr,
    merging_runtime,
)

LOUDER = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\n\nLOUD = True\n'


async def test_an_ai_finding_is_fixed_replied_to_and_resolved(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("docstring_reviewer")})
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "done"})
        mr = issue_mr(demo_sim, issue.iid)
        # The review read the diff through /diffs (paginated), never the deprecated /changes.
        read = {e.what for e in await runtime.storage.audit.for_target(f"{PROJECT}!{mr.iid}", 500)}
        assert "gitlab.mr.diffs" in read and "gitlab.mr.changes" not in read

    assert mr.state == "merged"
    threads = [d for d in mr.discussions.list(get_all=True) if not d.individual_note]
    assert len(threads) == 1
    first, *replies = threads[0].attributes["notes"]
    assert first["type"] == "DiffNote"
    assert (first["position"]["new_path"], first["position"]["new_line"]) == ("app/greet.py", 1)
    assert "`app/greet.py` has no module docstring" in first["body"]
    assert first["resolved"] is True
    assert len(replies) == 1 and replies[0]["body"].startswith("Fixed in `")
    assert "now opens with a module docstring" in replies[0]["body"]
    fixed_in = replies[0]["body"].split("`")[1]
    assert mr.sha.startswith(fixed_in)  # the fix is the head that was merged
    bodies = [note.body for note in mr.notes.list(get_all=True)]
    assert any(f"AI review of `{mr.sha[:10]}`: clean, nothing to change." in b for b in bodies)
    assert any("1 finding(s), opened as discussions" in b for b in bodies)
    merged = file_on(demo_sim, "app/greet.py")
    assert merged.startswith('"""Reviewed:') and "Hello, {name}!" in merged


async def test_a_finding_gitlab_will_not_place_on_the_diff_is_opened_on_the_mr(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    """GitLab answers 400 for a diff note on a line outside the diff (or a context line
    without its old line): the finding becomes a discussion on the MR naming the place,
    and is addressed and resolved like any other."""
    inject_fault(
        demo_sim, method="POST", path="/api/v4/projects/*/merge_requests/*/discussions",
        status=400, count=1,
    )  # fmt: skip
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("docstring_reviewer")})
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "done"})

    mr = issue_mr(demo_sim, issue.iid)
    threads = [d for d in mr.discussions.list(get_all=True) if not d.individual_note]
    assert len(threads) == 1
    first, *replies = threads[0].attributes["notes"]
    assert first["type"] == "DiscussionNote" and first.get("position") is None
    assert first["body"].startswith("`app/greet.py` line 1: ")
    assert "has no module docstring" in first["body"]
    assert first["resolved"] is True and replies[0]["body"].startswith("Fixed in `")
    assert mr.state == "merged"


async def test_a_humans_discussion_is_answered_in_code_and_resolved(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("docstring_reviewer")})
    config.roles.review.enabled = config.roles.qa.enabled = False
    documented = f'"""Greetings for the front page."""\n\n{GREET}'
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal(documented))
        await reach(runtime, {issue.iid: "review-ready"})
        mr = issue_mr(demo_sim, issue.iid)
        before = mr.sha
        asked = mr.discussions.create({"body": "app/greet.py: mark where the review happened."})
        config.roles.review.enabled = True
        await reach(runtime, {issue.iid: "qa-ready"})

    mr = issue_mr(demo_sim, issue.iid)
    thread = mr.discussions.get(asked.id)
    first, reply = thread.attributes["notes"]
    assert (first["author"]["username"], first["type"]) == ("maintainer", "DiscussionNote")
    assert first["resolved"] is True
    assert reply["author"]["username"] == "crewline-bot"
    assert reply["body"].startswith(f"Fixed in `{mr.sha[:10]}`")
    assert mr.sha != before
    assert f"# review thread {asked.id[:8]} addressed" in file_on(
        demo_sim, "app/greet.py", mr.source_branch
    )
    bodies = [note.body for note in mr.notes.list(get_all=True)]
    # The AI review found nothing, before the fix and after it.
    for head in (before, mr.sha):
        assert any(f"AI review of `{head[:10]}`: clean" in body for body in bodies)
    assert [d for d in mr.discussions.list(get_all=True) if not d.individual_note] == [thread]


async def test_review_rounds_running_out_block_with_the_open_threads_listed(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    config = full_config(demo_sim, tmp_path, agents={"demo": fake_agent("nitpicker")})
    config.roles.review_rounds = 1
    async with merging_runtime(demo_sim, config) as (runtime, _, _):
        issue = await file_goal(runtime, "Add greet", greet_goal())
        await reach(runtime, {issue.iid: "blocked"})

    mr = issue_mr(demo_sim, issue.iid)
    diff_threads = [
        d
        for d in mr.discussions.list(get_all=True)
        if d.attributes["notes"][0]["type"] == "DiffNote"
    ]
    assert [d.attributes["notes"][0]["resolved"] for d in diff_threads] == [True, False]
    fixed, still_open = (d.attributes["notes"] for d in diff_threads)
    assert fixed[1]["body"].startswith("Fixed in `")
    assert len(still_open) == 1 and still_open[0]["body"].startswith("Nit ")
    open_id = diff_threads[1].id
    outcome = next(body for body in note_bodies(demo_sim, issue.iid) if "Open review" in body)
    assert "Open review discussions (1 review rounds did not close them)" in outcome
    assert f"- `{open_id[:8]}` @crewline-bot: {still_open[0]['body'].splitlines()[0]}" in outcome
    assert fixed[0]["body"].splitlines()[0] not in outcome


async def test_approving_a_head_that_moved_after_qa_sends_it_back_to_qa_then_it_merges(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with greet_at_merge_ready(demo_sim, tmp_path) as (runtime, desk, _, issue):
        checked = desk.merges[-1].revision
        mr = issue_mr(demo_sim, issue.iid)
        assert checked == mr.sha and not mr.draft
        pushed = commit(demo_sim, mr.source_branch, "Greet louder", {"app/greet.py": LOUDER})
        main = as_maintainer(demo_sim).branches.get("main").commit["id"]

        moved = (
            f"!{mr.iid} moved to `{pushed[:10]}` after QA passed `{checked[:10]}`: the new "
            "head needs its own pipeline, back to QA."
        )
        # The card's head, and the new head no pipeline passed: neither merges.
        for revision in (checked, pushed):
            refused = await decide(runtime, issue.iid, revision)
            assert (refused.applied, refused.message) == (False, f"stale: {moved}")
            assert await state_of(runtime, issue.iid) == "qa-ready"
            assert issue_mr(demo_sim, issue.iid).state == "opened"
            assert as_maintainer(demo_sim).branches.get("main").commit["id"] == main
            if revision == checked:  # put it back where a stale click would find it
                await runtime.services.gateway.transition(PROJECT, issue.iid, "merge-ready")
        # Both refused approvals saw one fact (this head moved after QA): one keyed note.
        assert sum(moved in body for body in note_bodies(demo_sim, issue.iid)) == 1
        assert not any(body.startswith("Merge of") for body in note_bodies(demo_sim, issue.iid))

        # QA runs the new head's pipeline; approving that head merges it.
        await reach(runtime, {issue.iid: "merge-ready"})
        assert desk.merges[-1].revision == pushed
        merged = await decide(runtime, issue.iid, pushed)
        assert merged.applied, merged.message
        assert await state_of(runtime, issue.iid) == "done"

    merged_mr = issue_mr(demo_sim, issue.iid)
    assert merged_mr.state == "merged" and merged_mr.sha == pushed
    assert "LOUD = True" in file_on(demo_sim, "app/greet.py", "main")


async def test_the_janitor_sends_a_head_moved_after_qa_back_to_qa(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with greet_at_merge_ready(demo_sim, tmp_path) as (runtime, desk, events, issue):
        quiet = await sweep(runtime.services)
        assert quiet.back_to_qa == [] and await state_of(runtime, issue.iid) == "merge-ready"

        mr = issue_mr(demo_sim, issue.iid)
        pushed = commit(demo_sim, mr.source_branch, "Greet louder", {"app/greet.py": LOUDER})
        report = await sweep(runtime.services)
        assert report.back_to_qa == [f"{PROJECT}#{issue.iid}"]
        assert await state_of(runtime, issue.iid) == "qa-ready"
        told = [e for e in events.events if e.to_state == "qa-ready" and e.from_state]
        assert told[-1].from_state == "merge-ready" and "after QA passed" in told[-1].message
        again = await sweep(runtime.services)
        assert again.back_to_qa == []

        await reach(runtime, {issue.iid: "merge-ready"})
        assert [gate.revision for gate in desk.merges] == [mr.sha, pushed]


async def test_gitlab_refusing_the_merge_sends_it_back_to_qa_then_it_merges(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with greet_at_merge_ready(demo_sim, tmp_path) as (runtime, desk, _, issue):
        head = desk.merges[-1].revision
        inject_fault(
            demo_sim, method="PUT", path_regex=r"/merge_requests/\d+/merge$", status=409, count=1
        )
        refused = await decide(runtime, issue.iid, head)
        assert refused.applied
        assert refused.message.startswith("GitLab refused the merge (409")
        assert await state_of(runtime, issue.iid) == "qa-ready"
        assert issue_mr(demo_sim, issue.iid).state == "opened"
        # QA passes the same head again; the next approval of it is not "already decided".
        await reach(runtime, {issue.iid: "merge-ready"})
        assert [gate.revision for gate in desk.merges] == [head, head]
        merged = await decide(runtime, issue.iid, head)
        assert merged.applied, merged.message
        assert await state_of(runtime, issue.iid) == "done"

    bodies = note_bodies(demo_sim, issue.iid)
    assert sum("GitLab refused the merge (409" in body for body in bodies) == 1
    assert issue_mr(demo_sim, issue.iid).state == "merged"


async def test_the_filer_cannot_approve_their_own_goals_merge(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with merging_runtime(demo_sim, full_config(demo_sim, tmp_path), hold_merges=True) as (
        runtime, desk, _,
    ):  # fmt: skip
        filed = greet_goal(GREET, seal(filer_marker("alice")))
        issue = await file_goal(runtime, "Add greet", filed)
        await reach(runtime, {issue.iid: "merge-ready"})
        gate = desk.merges[-1]
        assert gate.filer == "alice"  # not GitLab's author: the bot filed it for alice
        own = await decide(runtime, issue.iid, gate.revision, approver="alice")
        assert (own.applied, own.message) == (
            False,
            "@alice filed this goal and cannot approve its merge",
        )
        assert await state_of(runtime, issue.iid) == "merge-ready"
        assert issue_mr(demo_sim, issue.iid).state == "opened"
        second = await decide(runtime, issue.iid, gate.revision, approver="bob")
        assert second.applied and "approved by bob via a test" in second.message
        assert await state_of(runtime, issue.iid) == "done"

    assert issue_mr(demo_sim, issue.iid).state == "merged"
    closed = as_maintainer(demo_sim).issues.get(issue.iid)
    assert closed.state == "closed"


async def test_a_merge_by_hand_in_gitlab_is_noticed_by_the_janitor(
    demo_sim: RunningSim, tmp_path: Path
) -> None:
    async with greet_at_merge_ready(demo_sim, tmp_path) as (runtime, _, events, issue):
        issue_mr(demo_sim, issue.iid).merge()  # a maintainer merges in GitLab's UI
        report = await sweep(runtime.services)
        assert report.merged == [f"{PROJECT}#{issue.iid}"]
        assert await state_of(runtime, issue.iid) == "done"
        assert (await sweep(runtime.services)).merged == []  # once
        told = [e for e in events.events if e.iid == issue.iid and e.to_state == "done"]
        assert [(e.from_state, e.kind) for e in told] == [("merge-ready", EventKind.TRANSITION)]

    assert as_maintainer(demo_sim).issues.get(issue.iid).state == "closed"
    bodies = note_bodies(demo_sim, issue.iid)
    mr = issue_mr(demo_sim, issue.iid)
    merged = f"!{mr.iid} was merged in GitLab; the work is done."
    assert sum(body.startswith(merged) for body in bodies) == 1
