"""The simulator's git layer on real bare repositories: commits from actions, diffs,
merges and checkouts, all without a working tree."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest

from sim.git.errors import GitActionError, GitConflict, GitStaleRef
from sim.git.repos import GitRepos, run_git

AUTHOR = {"author_name": "Ada", "author_email": "ada@example.invalid"}


def project_row(namespace: str = "demo", path: str = "app") -> sqlite3.Row:
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    row: sqlite3.Row = conn.execute(
        "SELECT 1 AS id, ? AS namespace, ? AS path, 'main' AS default_branch", (namespace, path)
    ).fetchone()
    return row


@pytest.fixture
def repos(tmp_path: Path) -> GitRepos:
    return GitRepos(tmp_path / "repos", base_url=lambda: "http://sim.test")


async def seed_main(repos: GitRepos, project: sqlite3.Row) -> str:
    return await repos.commit(
        project,
        branch="main",
        message="Initial commit\n\nWith a body.",
        actions=[
            {"action": "create", "file_path": "README.md", "content": "hello\n"},
            {"action": "create", "file_path": "src/lib.py", "content": "x = 1\n"},
        ],
        **AUTHOR,
    )


async def test_ensure_creates_a_bare_repo_with_the_default_branch(repos: GitRepos) -> None:
    project = project_row()
    path = await repos.ensure(project)
    assert path == repos.root / "demo" / "app.git"
    assert (path / "HEAD").read_text().strip() == "ref: refs/heads/main"
    assert (path / "hooks" / "pre-receive").exists()
    assert await repos.branches(project) == {}


async def test_first_commit_then_commit_info_and_log(repos: GitRepos) -> None:
    project = project_row()
    sha = await seed_main(repos, project)
    assert await repos.branches(project) == {"main": sha}
    info = await repos.commit_info(project, sha)
    assert info["id"] == sha and info["short_id"] == sha[:8]
    assert info["title"] == "Initial commit"
    assert info["message"].startswith("Initial commit\n\nWith a body.")
    assert info["author_name"] == "Ada" and info["committer_email"] == "ada@example.invalid"
    assert info["parent_ids"] == []
    assert info["web_url"] == f"http://sim.test/demo/app/-/commit/{sha}"
    assert info["authored_date"].endswith("Z")
    second = await repos.commit(
        project,
        branch="main",
        message="Touch lib",
        actions=[{"action": "update", "file_path": "src/lib.py", "content": "x = 2\n"}],
        **AUTHOR,
    )
    log = await repos.log(project, "main")
    assert [c["id"] for c in log] == [second, sha]
    assert (await repos.commit_info(project, second))["parent_ids"] == [sha]
    assert [c["id"] for c in await repos.log(project, "main", path="README.md")] == [sha]
    assert [c["id"] for c in await repos.log(project, "main", limit=1)] == [second]
    assert await repos.resolve(project, second[:10]) == second
    assert await repos.resolve(project, "nope") is None
    assert await repos.read_file(project, "main", "src/lib.py") == b"x = 2\n"
    assert await repos.read_file(project, sha, "src/lib.py") == b"x = 1\n"
    assert await repos.read_file(project, "main", "missing.txt") is None


async def test_every_action_type(repos: GitRepos) -> None:
    project = project_row()
    await seed_main(repos, project)
    binary = bytes(range(256))
    sha = await repos.commit(
        project,
        branch="main",
        message="All the actions",
        actions=[
            {"action": "create", "file_path": "bin/run.sh", "content": "#!/bin/sh\n"},
            {"action": "chmod", "file_path": "bin/run.sh", "execute_filemode": True},
            {
                "action": "create",
                "file_path": "data.bin",
                "content": base64.b64encode(binary).decode(),
                "encoding": "base64",
            },
            {"action": "update", "file_path": "README.md", "content": "hello again\n"},
            {"action": "move", "file_path": "pkg/lib.py", "previous_path": "src/lib.py"},
            {"action": "delete", "file_path": "README.md"},
        ],
        **AUTHOR,
    )
    tree = await repos.tree(project, sha, recursive=True)
    assert tree is not None
    files = {entry["path"]: entry["mode"] for entry in tree if entry["type"] == "blob"}
    assert files == {"bin/run.sh": "100755", "data.bin": "100644", "pkg/lib.py": "100644"}
    assert await repos.read_file(project, sha, "data.bin") == binary
    assert await repos.read_file(project, sha, "pkg/lib.py") == b"x = 1\n"
    diffs = {d["new_path"]: d for d in await repos.diff(project, f"{sha}~1", sha)}
    assert diffs["pkg/lib.py"]["renamed_file"] and diffs["pkg/lib.py"]["old_path"] == "src/lib.py"
    assert diffs["README.md"]["deleted_file"] and diffs["README.md"]["b_mode"] == "0"
    assert diffs["bin/run.sh"]["new_file"] and diffs["bin/run.sh"]["b_mode"] == "100755"
    assert diffs["bin/run.sh"]["diff"] == "@@ -0,0 +1 @@\n+#!/bin/sh\n"


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"action": "create", "file_path": "README.md", "content": "x"}, "already exists"),
        ({"action": "update", "file_path": "nope.txt", "content": "x"}, "doesn't exist"),
        ({"action": "delete", "file_path": "nope.txt"}, "doesn't exist"),
        ({"action": "move", "file_path": "a.txt", "previous_path": "nope.txt"}, "doesn't exist"),
        ({"action": "chmod", "file_path": "nope.txt", "execute_filemode": True}, "doesn't exist"),
        ({"action": "create", "file_path": "../escape", "content": "x"}, "not a valid"),
        ({"action": "create", "file_path": "README.md/inner", "content": "x"}, "is a file"),
        (
            {"action": "create", "file_path": "b.bin", "content": "!!", "encoding": "base64"},
            "base64",
        ),
        ({"action": "rename", "file_path": "README.md"}, "must be one of"),
    ],
)
async def test_invalid_actions_write_nothing(
    repos: GitRepos, action: dict[str, str], message: str
) -> None:
    project = project_row()
    head = await seed_main(repos, project)
    with pytest.raises(GitActionError, match=message):
        await repos.commit(project, branch="main", message="bad", actions=[action], **AUTHOR)
    assert await repos.branches(project) == {"main": head}


async def test_branches_start_branch_and_stale_expectations(repos: GitRepos) -> None:
    project = project_row()
    head = await seed_main(repos, project)
    with pytest.raises(GitActionError, match="start_branch"):
        await repos.commit(
            project,
            branch="feature",
            message="m",
            actions=[{"action": "create", "file_path": "f.txt", "content": "f"}],
            **AUTHOR,
        )
    feature = await repos.commit(
        project,
        branch="feature",
        start_branch="main",
        message="Feature",
        actions=[{"action": "create", "file_path": "f.txt", "content": "f"}],
        **AUTHOR,
    )
    assert await repos.branches(project) == {"main": head, "feature": feature}
    with pytest.raises(GitStaleRef):
        await repos.commit(
            project,
            branch="main",
            message="m",
            expected_sha=feature,
            actions=[{"action": "create", "file_path": "g.txt", "content": "g"}],
            **AUTHOR,
        )
    assert await repos.create_branch(project, "copy", "feature") == feature
    with pytest.raises(GitStaleRef, match="already exists"):
        await repos.create_branch(project, "copy", "main")
    await repos.delete_branch(project, "copy")
    assert "copy" not in await repos.branches(project)
    assert await repos.merge_base(project, "main", "feature") == head
    assert await repos.is_ancestor(project, "main", "feature")
    assert not await repos.is_ancestor(project, "feature", "main")


async def branch_editing(repos: GitRepos, project: sqlite3.Row, branch: str, content: str) -> str:
    return await repos.commit(
        project,
        branch=branch,
        start_branch="main",
        message=f"Edit on {branch}",
        actions=[{"action": "update", "file_path": "src/lib.py", "content": content}],
        **AUTHOR,
    )


async def test_merge_check_detects_a_real_conflict_and_merge_refuses(repos: GitRepos) -> None:
    project = project_row()
    await seed_main(repos, project)
    await branch_editing(repos, project, "left", "x = 'left'\n")
    await branch_editing(repos, project, "right", "x = 'right'\n")
    await repos.merge(project, source="left", target="main", message="Merge left", **AUTHOR)
    assert await repos.merge_check(project, "right", "main") == "cannot_be_merged"
    before = (await repos.branches(project))["main"]
    with pytest.raises(GitConflict):
        await repos.merge(project, source="right", target="main", message="Merge right", **AUTHOR)
    assert (await repos.branches(project))["main"] == before


async def test_merge_creates_a_merge_commit_or_a_squash(repos: GitRepos) -> None:
    project = project_row()
    base = await seed_main(repos, project)
    feature = await branch_editing(repos, project, "feature", "x = 3\n")
    await repos.commit(
        project,
        branch="main",
        message="Main moves on",
        actions=[{"action": "create", "file_path": "other.txt", "content": "o"}],
        **AUTHOR,
    )
    main_before = (await repos.branches(project))["main"]
    assert await repos.merge_check(project, "feature", "main") == "can_be_merged"
    with pytest.raises(GitStaleRef):
        await repos.merge(
            project,
            source="feature",
            target="main",
            message="m",
            expected_target_sha=base,
            **AUTHOR,
        )
    merged = await repos.merge(
        project,
        source="feature",
        target="main",
        message="Merge branch 'feature'",
        expected_target_sha=main_before,
        **AUTHOR,
    )
    info = await repos.commit_info(project, merged)
    assert info["parent_ids"] == [main_before, feature]
    assert await repos.read_file(project, "main", "src/lib.py") == b"x = 3\n"
    assert await repos.read_file(project, "main", "other.txt") == b"o"
    squash_source = await branch_editing(repos, project, "squashy", "x = 4\n")
    squashed = await repos.merge(
        project, source="squashy", target="main", message="Squash", squash=True, **AUTHOR
    )
    assert (await repos.commit_info(project, squashed))["parent_ids"] == [merged]
    assert not await repos.is_ancestor(project, squash_source, "main")


async def test_checkout_gives_a_working_copy(repos: GitRepos, tmp_path: Path) -> None:
    project = project_row()
    first = await seed_main(repos, project)
    await branch_editing(repos, project, "main", "x = 9\n")
    dest = await repos.checkout(project, first, tmp_path / "work")
    assert (dest / "src" / "lib.py").read_text() == "x = 1\n"
    _, head = await run_git("rev-parse", "HEAD", cwd=dest)
    assert head.decode().strip() == first
