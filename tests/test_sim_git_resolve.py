"""How the simulator resolves refs: from the repository's files for plain branch names, from
git for the rest, always as git itself would answer (the fast path must never disagree)."""

from __future__ import annotations

from pathlib import Path

from sim.git.repos import GitRepos, run_git
from tests.test_sim_git_repos import AUTHOR, project_row, seed_main


async def git_says(repos: GitRepos, project: object, ref: str) -> str | None:
    """GitLab's order asked of git alone: a branch, else a tag, else any revision."""
    if ref.startswith("-"):
        return None
    for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}", ref):
        code, out = await run_git(
            "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}",
            git_dir=repos.path(project),  # type: ignore[arg-type]
            ok_codes=(0, 1, 128),
        )  # fmt: skip
        if code == 0:
            return out.decode().strip()
    return None


async def test_every_kind_of_ref_resolves_as_git_resolves_it(tmp_path: Path) -> None:
    repos = GitRepos(tmp_path / "repos", base_url=lambda: "http://sim.test")
    project = project_row()
    first = await seed_main(repos, project)
    second = await repos.commit(
        project, branch="main", message="Two",
        actions=[{"action": "update", "file_path": "src/lib.py", "content": "x = 2\n"}],
        **AUTHOR,
    )  # fmt: skip
    repo = repos.path(project)
    env = {"GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.invalid"}
    await run_git("tag", "-a", "-m", "v1", "v1", first, git_dir=repo, env=env)  # annotated
    await run_git("tag", "light", second, git_dir=repo)
    await run_git("branch", "feature/x", first, git_dir=repo)
    await run_git("tag", "main", first, git_dir=repo)  # a tag named like a branch: branch wins
    await run_git("symbolic-ref", "refs/heads/alias", "refs/heads/main", git_dir=repo)
    await run_git("branch", "packed", first, git_dir=repo)
    await run_git("pack-refs", "--all", git_dir=repo)  # "packed" now lives in packed-refs only
    await run_git("update-ref", "refs/heads/feature/x", second, git_dir=repo)  # loose again
    refs = ["main", "feature/x", "feature", "v1", "light", "alias", "packed", "main~1",
            first, first[:10], second, "nope", "HEAD", "../HEAD", "refs/heads/main", "-x"]  # fmt: skip
    for _ in range(2):  # the second round answers from what the first learnt
        for ref in refs:
            expected = await git_says(repos, project, ref)
            assert await repos.resolve(project, ref) == expected, ref
    assert await repos.resolve(project, "main") == second
    assert await repos.resolve(project, "v1") == first  # peeled to its commit
    assert await repos.resolve(project, "packed") == first


async def test_a_branch_moved_behind_the_simulators_back_is_read_fresh(tmp_path: Path) -> None:
    repos = GitRepos(tmp_path / "repos", base_url=lambda: "http://sim.test")
    project = project_row()
    first = await seed_main(repos, project)
    assert await repos.resolve(project, "main") == first
    second = await repos.commit(
        project, branch="main", message="Two",
        actions=[{"action": "update", "file_path": "README.md", "content": "bye\n"}],
        **AUTHOR,
    )  # fmt: skip
    assert await repos.resolve(project, "main") == second
    await run_git("update-ref", "refs/heads/main", first, git_dir=repos.path(project))
    assert await repos.resolve(project, "main") == first


async def test_a_commits_page_is_read_once_and_handed_out_as_a_copy(tmp_path: Path) -> None:
    repos = GitRepos(tmp_path / "repos", base_url=lambda: "http://sim.test")
    project = project_row()
    sha = await seed_main(repos, project)
    page = await repos.commit_info(project, sha)
    page["title"] = "changed by a caller"
    page["parent_ids"].append("x")
    again = await repos.commit_info(project, sha)
    assert again["title"] == "Initial commit" and again["parent_ids"] == []
    moved = GitRepos(tmp_path / "repos", base_url=lambda: "http://other.test")
    assert (await moved.commit_info(project, sha))["web_url"].startswith("http://other.test/")
