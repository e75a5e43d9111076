"""The repository API (branches, protected branches, commits, files, compare, tree),
driven by python-gitlab over loopback HTTP against real bare repositories."""

from __future__ import annotations

import base64

import gitlab
import pytest

from sim.core.app import RunningSim
from tests.support.sim_git import BOT_TOKEN, MAINTAINER_TOKEN, PushRecorder, client, make_project


def project_as(sim: RunningSim, project_id: int, token: str = BOT_TOKEN) -> object:
    return client(sim, token).projects.get(project_id, lazy=True)


def test_branches_list_get_create_delete(sim: RunningSim) -> None:
    project_id = make_project(sim)
    bot = client(sim, BOT_TOKEN).projects.get(project_id, lazy=True)
    recorder = PushRecorder(sim)
    main = bot.branches.get("main")
    assert main.protected and main.default and not main.merged
    assert not main.developers_can_push and not main.developers_can_merge and not main.can_push
    assert main.commit["title"] == "Initial commit"
    created = bot.branches.create({"branch": "feature/one", "ref": "main"})
    assert created.name == "feature/one" and created.commit["id"] == main.commit["id"]
    assert created.can_push and not created.protected and created.merged
    bot.branches.create({"branch": "other", "ref": "main"})
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as exists:
        bot.branches.create({"branch": "other", "ref": "main"})
    assert exists.value.response_code == 400
    assert exists.value.error_message == "Branch already exists"
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as bad_ref:
        bot.branches.create({"branch": "x", "ref": "no-such-ref"})
    assert bad_ref.value.error_message == "Invalid reference name: no-such-ref"
    assert [b.name for b in bot.branches.list(get_all=True)] == ["feature/one", "main", "other"]
    assert [b.name for b in bot.branches.list(search="feat", get_all=True)] == ["feature/one"]
    assert [b.name for b in bot.branches.list(search="^o", get_all=True)] == ["other"]
    bot.branches.delete("feature/one")
    with pytest.raises(gitlab.exceptions.GitlabGetError) as gone:
        bot.branches.get("feature/one")
    assert gone.value.response_code == 404
    with pytest.raises(gitlab.exceptions.GitlabDeleteError) as default:
        bot.branches.delete("main")
    assert default.value.response_code == 405
    refs = [(e["ref"], e["before"] == "0" * 40, e["after"] == "0" * 40) for e in recorder.settled()]
    assert ("refs/heads/feature/one", True, False) in refs
    assert ("refs/heads/feature/one", False, True) in refs


def test_protected_branches_api_needs_a_maintainer(sim: RunningSim) -> None:
    project_id = make_project(sim)
    maintainer = client(sim, MAINTAINER_TOKEN).projects.get(project_id, lazy=True)
    bot = client(sim, BOT_TOKEN).projects.get(project_id, lazy=True)
    [main] = maintainer.protectedbranches.list()
    assert main.name == "main"
    assert main.push_access_levels[0]["access_level"] == 40
    assert main.merge_access_levels[0]["access_level_description"] == "Maintainers"
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as denied:
        bot.protectedbranches.create({"name": "release/*"})
    assert denied.value.response_code == 403
    release = maintainer.protectedbranches.create(
        {"name": "release/*", "push_access_level": 30, "merge_access_level": 40}
    )
    assert release.push_access_levels[0]["access_level"] == 30
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as twice:
        maintainer.protectedbranches.create({"name": "release/*"})
    assert twice.value.response_code == 409
    assert twice.value.error_message == "Protected branch 'release/*' already exists"
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as invalid:
        maintainer.protectedbranches.create({"name": "x", "push_access_level": 35})
    assert invalid.value.response_code == 400
    bot.branches.create({"branch": "release/1", "ref": "main"})
    branch = bot.branches.get("release/1")
    assert branch.protected and branch.developers_can_push and not branch.developers_can_merge
    assert maintainer.protectedbranches.get("release/*").name == "release/*"
    maintainer.protectedbranches.delete("release/*")
    assert [p.name for p in maintainer.protectedbranches.list()] == ["main"]
    with pytest.raises(gitlab.exceptions.GitlabDeleteError):
        bot.branches.delete("main")
    maintainer.protectedbranches.delete("main")
    assert not bot.branches.get("main").protected


def test_commits_api_each_action_and_push_event(sim: RunningSim) -> None:
    project_id = make_project(sim)
    bot = client(sim, BOT_TOKEN).projects.get(project_id, lazy=True)
    recorder = PushRecorder(sim)
    commit = bot.commits.create(
        {
            "branch": "work",
            "start_branch": "main",
            "commit_message": "Add files\n\nDetails.",
            "author_name": "Agent",
            "author_email": "agent@example.invalid",
            "actions": [
                {"action": "create", "file_path": "a.txt", "content": "a\n"},
                {
                    "action": "create",
                    "file_path": "b.bin",
                    "content": base64.b64encode(b"\x00\x01").decode(),
                    "encoding": "base64",
                },
                {"action": "create", "file_path": "run.sh", "content": "echo hi\n"},
            ],
        }
    )
    assert commit.title == "Add files" and commit.author_name == "Agent"
    assert commit.stats["additions"] == 2
    second = bot.commits.create(
        {
            "branch": "work",
            "commit_message": "Change files",
            "actions": [
                {"action": "update", "file_path": "a.txt", "content": "A\n"},
                {"action": "move", "file_path": "docs/b.bin", "previous_path": "b.bin"},
                {"action": "chmod", "file_path": "run.sh", "execute_filemode": True},
                {"action": "delete", "file_path": "README.md"},
            ],
        }
    )
    assert second.parent_ids == [commit.id]
    diffs = {d["new_path"]: d for d in bot.commits.get(second.id).diff(get_all=True)}
    assert diffs["a.txt"]["diff"] == "@@ -1 +1 @@\n-a\n+A\n"
    assert diffs["docs/b.bin"]["renamed_file"] and diffs["docs/b.bin"]["old_path"] == "b.bin"
    assert diffs["run.sh"]["b_mode"] == "100755" and diffs["README.md"]["deleted_file"]
    run_sh = bot.files.get("run.sh", ref="work")
    assert run_sh.execute_filemode is True
    assert bot.files.raw("docs/b.bin", ref="work") == b"\x00\x01"
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as exists:
        bot.commits.create(
            {
                "branch": "work",
                "commit_message": "dup",
                "actions": [{"action": "create", "file_path": "a.txt", "content": "x"}],
            }
        )
    assert exists.value.response_code == 400 and "already exists" in exists.value.error_message
    with pytest.raises(gitlab.exceptions.GitlabCreateError) as protected:
        bot.commits.create(
            {
                "branch": "main",
                "commit_message": "direct",
                "actions": [{"action": "create", "file_path": "x.txt", "content": "x"}],
            }
        )
    assert protected.value.response_code == 403
    assert protected.value.error_message == "You are not allowed to push into this branch"
    events = [e for e in recorder.settled() if e["ref"] == "refs/heads/work"]
    assert [e["after"] for e in events] == [commit.id, second.id]
    assert events[1]["before"] == commit.id
    changed = events[1]["commits"][0]
    assert changed["removed"] == ["README.md", "b.bin"] and changed["added"] == ["docs/b.bin"]
    assert changed["modified"] == ["a.txt", "run.sh"]
    maintainer = client(sim, MAINTAINER_TOKEN).projects.get(project_id, lazy=True)
    direct = maintainer.commits.create(
        {
            "branch": "main",
            "commit_message": "Maintainer commit",
            "actions": [{"action": "create", "file_path": "m.txt", "content": "m"}],
        }
    )
    assert maintainer.branches.get("main").commit["id"] == direct.id


def test_commits_list_get_and_pagination(sim: RunningSim) -> None:
    project_id = make_project(sim, protect_main=False)
    bot = client(sim, BOT_TOKEN).projects.get(project_id, lazy=True)
    ids = []
    for number in range(5):
        made = bot.commits.create(
            {
                "branch": "main",
                "commit_message": f"Commit {number}",
                "actions": [{"action": "create", "file_path": f"f{number}.txt", "content": "x"}],
            }
        )
        ids.append(made.id)
    listed = bot.commits.list(ref_name="main", per_page=2, get_all=True)
    assert [c.id for c in listed][:5] == list(reversed(ids))
    page = bot.commits.list(ref_name="main", per_page=2, page=2)
    assert [c.id for c in page] == [ids[2], ids[1]]
    # python-gitlab reserves ``path=`` for the URL: the filter goes in query_parameters.
    by_path = bot.commits.list(ref_name="main", query_parameters={"path": "f3.txt"}, get_all=True)
    assert [c.id for c in by_path] == [ids[3]]
    got = bot.commits.get(ids[0][:10])
    assert got.id == ids[0] and got.message.startswith("Commit 0")
    with pytest.raises(gitlab.exceptions.GitlabGetError) as missing:
        bot.commits.get("0" * 40)
    assert missing.value.response_code == 404


def test_files_compare_and_tree(sim: RunningSim) -> None:
    project_id = make_project(sim, protect_main=False)
    bot = client(sim, BOT_TOKEN).projects.get(project_id, lazy=True)
    readme = bot.files.get("README.md", ref="main")
    assert base64.b64decode(readme.content) == b"# app\n"
    assert readme.file_name == "README.md" and readme.encoding == "base64"
    assert readme.size == 6 and len(readme.blob_id) == 40 and readme.ref == "main"
    with pytest.raises(gitlab.exceptions.GitlabGetError) as missing:
        bot.files.get("nope.txt", ref="main")
    assert missing.value.response_code == 404
    bot.files.create(
        {
            "file_path": "src/app/main.py",
            "branch": "main",
            "content": "print(1)\n",
            "commit_message": "Add main",
        }
    )
    main_file = bot.files.get("src/app/main.py", ref="main")
    main_file.content = "print(2)\n"
    main_file.save(branch="main", commit_message="Update main")
    assert bot.files.raw("src/app/main.py", ref="main") == b"print(2)\n"
    bot.branches.create({"branch": "topic", "ref": "main"})
    bot.commits.create(
        {
            "branch": "topic",
            "commit_message": "Topic change",
            "actions": [{"action": "create", "file_path": "topic.txt", "content": "t\n"}],
        }
    )
    result = bot.repository_compare("main", "topic")
    assert [c["title"] for c in result["commits"]] == ["Topic change"]
    assert result["commit"]["title"] == "Topic change"
    assert [d["new_path"] for d in result["diffs"]] == ["topic.txt"]
    assert result["compare_same_ref"] is False
    assert bot.repository_compare("main", "main")["compare_same_ref"] is True
    top = {e["path"]: e["type"] for e in bot.repository_tree(ref="main", get_all=True)}
    assert top == {"README.md": "blob", "src": "tree"}
    nested = bot.repository_tree(path="src", ref="main", recursive=True, get_all=True)
    assert {e["path"] for e in nested} == {"src/app", "src/app/main.py"}
    bot.files.delete(file_path="src/app/main.py", branch="main", commit_message="Remove main")
    with pytest.raises(gitlab.exceptions.GitlabGetError):
        bot.files.get("src/app/main.py", ref="main")
