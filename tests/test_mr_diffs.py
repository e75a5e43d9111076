"""An MR's diff is read through ``GET /merge_requests/:iid/diffs``, every page of it: the
deprecated ``/changes`` (GitLab 15.7) truncates large merge requests."""

from __future__ import annotations

from pathlib import Path

from sim.core.app import RunningSim
from tests.support.forge import PROJECT, gateway_for
from tests.support.sim_mr import make_repo

FILES = 130  # more than one page: GitLab (and the simulator) serve at most 100 a page


async def test_every_page_of_a_large_mrs_diffs_is_read(sim: RunningSim, tmp_path: Path) -> None:
    repo = make_repo(sim)
    actions = [
        {"action": "create", "file_path": f"pkg/module_{n:03}.py", "content": f"VALUE = {n}\n"}
        for n in range(FILES)
    ]
    repo.root.commits.create(
        {"branch": "big", "start_branch": "main", "commit_message": "Big", "actions": actions}
    )
    mr = repo.bot.mergerequests.create(
        {"source_branch": "big", "target_branch": "main", "title": "Big change"}
    )
    async with gateway_for(sim, tmp_path / "db.sqlite3") as (gateway, storage):
        diffs = await gateway.merges.diffs(PROJECT, int(mr.iid))
        audited = {entry.what for entry in await storage.audit.for_target(f"{PROJECT}!{mr.iid}")}
    assert sorted(d.new_path for d in diffs) == [f"pkg/module_{n:03}.py" for n in range(FILES)]
    assert all(d.new_file and "+VALUE = " in d.diff for d in diffs)
    assert audited == {"gitlab.mr.diffs"}
