"""What real agent CLIs need from the bubblewrap sandbox, proven with stand-ins shaped like
them: git that can stage files in a linked worktree (aider ``git add``s every file it
creates and drops its edit when that fails) while the shared repository stays untouched, and
an npm-installed CLI that loads a sibling package (Codex runs its native binary from
``@openai/codex-linux-x64``).

Real parts: the simulator's repository, crewline's own workspaces (mirror and linked
worktrees) and commit, the real bubblewrap."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from roles.sandbox import BwrapSandbox
from roles.validate import Check, run_validation
from sim.core.app import RunningSim
from tests.support.workspace import AUTHOR, PROJECT, workspace_setup


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def object_files(git_dir: Path) -> set[Path]:
    return {path for path in (git_dir / "objects").rglob("*") if path.is_file()}


async def test_git_in_the_sandbox_stages_files_on_private_copies_and_crewline_commits_them(
    sim: RunningSim, tmp_path: Path
) -> None:
    async with workspace_setup(sim, tmp_path) as setup:
        workspaces = setup.workspaces()
        mine = await workspaces.open(PROJECT, setup.url, 1, "mine", "main", "run-1")
        try:
            shared = Path(git("rev-parse", "--git-common-dir", cwd=mine.path).strip())
            shared = (mine.path / shared).resolve()
            objects_before = object_files(shared)
            # What aider does for a new file (touch, git add, write), an empty one left as
            # is (its blob exists nowhere yet), and a detached HEAD.
            script = (
                "set -e; mkdir -p app; : > app/shout.py; git add app/shout.py; "
                "echo 'def shout(t): return t' > app/shout.py; : > app/__init__.py; "
                "git add app/__init__.py; git status --porcelain; git checkout -q --detach"
            )
            report = await run_validation(
                mine.path, [Check("stage", script)], sandbox=BwrapSandbox(hidden=[setup.root])
            )
            assert report.go, report.to_markdown()
            assert "A  app/__init__.py" in report.results[0].output_tail
            assert "AM app/shout.py" in report.results[0].output_tail

            # Nothing of it reached the repository crewline works with: same objects, the
            # files untracked, HEAD still on the branch.
            assert object_files(shared) == objects_before
            status = git("status", "--porcelain", "--untracked-files=all", cwd=mine.path)
            assert sorted(status.splitlines()) == ["?? app/__init__.py", "?? app/shout.py"]
            assert git("symbolic-ref", "HEAD", cwd=mine.path).strip() == f"refs/heads/{mine.branch}"

            sha = await workspaces.commit_all(mine, "Add the shout helper", *AUTHOR)
            assert sha is not None
            shown = git("show", "--name-only", "--format=", sha, cwd=mine.path)
            assert sorted(shown.split()) == ["app/__init__.py", "app/shout.py"]
            assert git("show", f"{sha}:app/shout.py", cwd=mine.path) == "def shout(t): return t\n"
        finally:
            await workspaces.close(mine)


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)


def test_an_npm_cli_sees_the_sibling_packages_it_loads(tmp_path: Path) -> None:
    modules = tmp_path / "tools" / "node_modules"
    native = modules / "@acme" / "tool-linux-x64" / "vendor" / "tool"
    _script(native, "#!/bin/sh\necho native tool ran\n")
    # Like codex.js: find the platform package beside its own, then run its binary.
    _script(
        modules / "@acme" / "tool" / "bin" / "tool.sh",
        '#!/bin/sh\nhere=$(dirname "$(readlink -f "$0")")\n'
        'exec "$here/../../tool-linux-x64/vendor/tool"\n',
    )
    (modules / ".bin").mkdir()
    os.symlink("../@acme/tool/bin/tool.sh", modules / ".bin" / "tool")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    launch = BwrapSandbox().wrap(
        [str(modules / ".bin" / "tool")],
        cwd=workspace,
        env={"PATH": os.defpath, "HOME": str(home)},
    )

    done = subprocess.run(
        launch.argv, env=launch.env, capture_output=True, text=True, timeout=60, check=False
    )

    assert (done.returncode, done.stdout) == (0, "native tool ran\n"), done.stderr
    # Only the npm tree came along, not what lies beside it.
    assert str(tmp_path / "tools" / "node_modules") in launch.argv
    assert str(tmp_path / "tools") not in launch.argv


def test_a_command_has_no_capability_to_undo_the_sandbox(tmp_path: Path) -> None:
    """Whoever runs crewline (CI runs as root, where bwrap keeps every capability unless
    told otherwise): a command cannot unmount what hides crewline's files, nor do anything
    else that takes a capability (remount the system writable, say)."""
    home = tmp_path / "home"
    hidden = home / "crewline-data"
    hidden.mkdir(parents=True)
    (hidden / "crewline.sqlite3").write_text("the database", encoding="utf-8")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    script = f"umount {hidden}; cat {hidden}/crewline.sqlite3; grep CapEff /proc/self/status; id -u"
    launch = BwrapSandbox(hidden=[hidden]).wrap(
        ["sh", "-c", script], cwd=workspace, env={"PATH": os.defpath, "HOME": str(home)}
    )

    done = subprocess.run(
        launch.argv, env=launch.env, capture_output=True, text=True, timeout=60, check=False
    )

    assert "the database" not in done.stdout
    assert "CapEff:\t0000000000000000" in done.stdout, done.stdout
    assert done.stdout.split()[-1] != "0"  # never root inside, even when crewline is
