"""Running git (in a worker thread, off the loop) in a clean environment (no user or system
configuration leaks in, identities come from the caller)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from sim.git.errors import GitError


def clean_git_env() -> dict[str, str]:
    """The environment git runs in: no user or system configuration leaks in."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": os.devnull})
    return env


async def run_git(
    *args: str,
    git_dir: Path | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    ok_codes: tuple[int, ...] = (0,),
) -> tuple[int, bytes]:
    """Run git; return (exit code, stdout). Raises :class:`GitError` for other exit codes."""
    full_env = clean_git_env()
    full_env.update(env or {})
    prefix = ["--git-dir", os.fspath(git_dir)] if git_dir is not None else []
    # In a thread, not as an asyncio subprocess: a call cancelled when the simulator stops
    # (a deferred pipeline step) lets git finish on its own, where an asyncio child left
    # running kept a transport that the garbage collector closed after the loop had,
    # an error raised in whatever test ran next.
    process = await asyncio.to_thread(
        subprocess.run,
        ["git", *prefix, *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        check=False,
    )
    out, err = process.stdout, process.stderr
    code = process.returncode
    if code not in ok_codes:
        raise GitError(
            f"git {' '.join(args[:3])} failed ({code}): {err.decode(errors='replace').strip()}"
        )
    return code, out


def identity_env(name: str, email: str, when: str | None = None) -> dict[str, str]:
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    if when:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when
    return env
