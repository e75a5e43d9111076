"""``--seed demo``: the project ``demo/app`` with the demo package committed to a protected
``main``. The files live in ``sim/core/seed/demo/`` (shipped as package data); a name
starting with ``dot-`` is committed with a leading ``.`` instead (``dot-gitlab-ci.yml`` ->
``.gitlab-ci.yml``), because packaging globs skip dotfiles."""

from __future__ import annotations

from pathlib import Path

from sim.core.base import Sim, create_project
from sim.git.protected_branches import protect
from sim.git.repository import git_repos_for

DEMO_PROJECT = "demo/app"
DEMO_FILES = Path(__file__).resolve().parent / "seed" / "demo"
_SKIPPED = ("__pycache__", ".pyc", "report.xml")


def demo_files(root: Path = DEMO_FILES) -> dict[str, bytes]:
    """Repository path -> content of every demo file."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if not path.is_file() or any(part in relative for part in _SKIPPED):
            continue
        parts = [
            "." + part.removeprefix("dot-") if part.startswith("dot-") else part
            for part in path.relative_to(root).parts
        ]
        files["/".join(parts)] = path.read_bytes()
    if not files:
        raise FileNotFoundError(f"no demo project files under {root}: is the package complete?")
    return files


async def _user_id(sim: Sim, username: str) -> int:
    row = await sim.store.fetchone("SELECT id FROM users WHERE username = ?", (username,))
    if row is None:
        raise LookupError(f"seed user {username!r} is missing: seed the users first")
    return int(row[0])


async def seed_demo(sim: Sim, *, bot_level: int, maintainer_level: int) -> int:
    """Create ``demo/app`` (crewline-bot at ``bot_level``, maintainer at ``maintainer_level``),
    commit the demo files to ``main`` and protect it (push and merge: Maintainers).
    Idempotent: run again, it changes nothing. Returns the project id."""
    bot, maintainer = await _user_id(sim, "crewline-bot"), await _user_id(sim, "maintainer")
    project_id = await create_project(
        sim, DEMO_PROJECT, members={bot: bot_level, maintainer: maintainer_level}
    )
    project = await sim.store.fetchone("SELECT * FROM projects WHERE id = ?", (project_id,))
    assert project is not None
    repos = git_repos_for(sim)
    if "main" not in await repos.branches(project):
        actions = [
            {"action": "create", "file_path": path, "content": content.decode()}
            for path, content in demo_files().items()
        ]
        await repos.commit(
            project,
            branch="main",
            message="Demo project: text utilities, unittest suite, CI test job",
            actions=actions,
            author_name="Maintainer",
            author_email="maintainer@sim.invalid",
        )
    await protect(sim, project_id, "main")
    return project_id
