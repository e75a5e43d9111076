"""Running git for crewline's workspaces: subprocesses run from a thread (``procthread``) in a
clean environment, with a deadline, and with the GitLab token passed only to the network
commands that need it.

The token never lands on disk or in a URL: a network command gets an
``http.<origin>.extraHeader = Authorization: Basic base64(oauth2:TOKEN)`` through
``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` in its environment, scoped to the
clone URL's origin so a redirect or a tampered remote URL cannot carry it elsewhere. Every piece
of git output that reaches an exception or a log goes through :meth:`Git.sanitize`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from roles.workspace.errors import GitCommandError, GitTimeout
from roles.workspace.procthread import run_short

log = logging.getLogger(__name__)

_INHERITED = ("PATH", "TMPDIR", "SYSTEMROOT")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_REDACTED = "[REDACTED]"
_USERINFO_REDACTED = r"\1" + _REDACTED + "@"

# Applied to every git command: repository hooks never run under crewline's identity (an agent
# can write into the shared repository), and no credential helper is ever consulted.
_ALWAYS: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("credential.helper", ""),
)


@dataclass(frozen=True, slots=True)
class GitOutput:
    exit_code: int
    stdout: str
    stderr: str  # sanitized


def http_origin(url: str) -> str:
    """``https://host:8443/group/app.git`` -> ``https://host:8443/``; refuses URLs with
    credentials or another scheme, since crewline authenticates with a header only."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = _URL_USERINFO.sub(_USERINFO_REDACTED, url)
        raise ValueError(
            f"clone URL {shown!r} is not an http(s) URL; "
            "crewline reaches GitLab over HTTPS (e.g. https://gitlab.example.com/group/app.git)"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "clone URL must not carry credentials (user:token@); crewline passes the token "
            "in a header itself, so give the plain project URL"
        )
    return f"{parts.scheme}://{parts.netloc}/"


class Git:
    """git with a fixed home, a deadline per command and, on request, the token."""

    def __init__(self, home: Path, timeout_seconds: float, token: str) -> None:
        if not token:
            raise ValueError("a GitLab token is required to fetch and push workspaces")
        self._home = home
        self._home_made = False
        self._timeout = timeout_seconds
        basic = base64.b64encode(f"oauth2:{token}".encode()).decode("ascii")
        self._header = f"Authorization: Basic {basic}"
        # Longest first, so the base64 form is redacted before a token inside it could be.
        self._secrets = sorted({token, basic, self._header}, key=len, reverse=True)

    def sanitize(self, text: str) -> str:
        """``text`` without the token (raw or base64) or credentials embedded in a URL."""
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return _URL_USERINFO.sub(_USERINFO_REDACTED, text)

    def _env(self, auth_url: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
        if not self._home_made:  # once: git runs without it, should it be deleted later
            self._home.mkdir(parents=True, exist_ok=True)
            self._home_made = True
        env.update(
            {
                "HOME": os.fspath(self._home),
                "XDG_CONFIG_HOME": os.fspath(self._home / ".config"),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_OPTIONAL_LOCKS": "0",
                # Stable English messages: push rejections are recognised by their wording.
                "LC_ALL": "C",
                "LANG": "C",
            }
        )
        entries = list(_ALWAYS)
        if auth_url is not None:
            entries.append((f"http.{http_origin(auth_url)}.extraHeader", self._header))
        env["GIT_CONFIG_COUNT"] = str(len(entries))
        for index, (key, value) in enumerate(entries):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        env.update(extra or {})
        return env

    async def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        git_dir: Path | None = None,
        auth_url: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        ok_codes: Sequence[int] = (0,),
        attempts: int = 1,
    ) -> GitOutput:
        """Run ``git [--git-dir DIR] ARGS`` in ``cwd``; exit codes outside ``ok_codes`` raise
        :class:`GitCommandError` (:class:`GitTimeout` past the deadline).

        ``attempts`` > 1 only for commands that change nothing on the remote (fetch,
        ls-remote): a failed attempt (a 5xx, a reset, a timeout) is repeated after a short
        jittered pause. A push is never repeated here: see ``Workspaces.push``."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        for attempt in range(1, attempts + 1):
            try:
                return await self._run_once(args, cwd, git_dir, auth_url, env, stdin, ok_codes)
            except GitCommandError as error:
                if attempt == attempts:
                    raise
                pause = random.uniform(0, min(4.0, 0.25 * 2**attempt))
                log.info(
                    "%s failed (%s); attempt %d in %.2fs", error.command, error, attempt + 1, pause
                )
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def _run_once(
        self,
        args: Sequence[str],
        cwd: Path,
        git_dir: Path | None,
        auth_url: str | None,
        env: Mapping[str, str] | None,
        stdin: bytes | None,
        ok_codes: Sequence[int],
    ) -> GitOutput:
        prefix = ["--git-dir", os.fspath(git_dir)] if git_dir is not None else []
        shown = self.sanitize(" ".join(["git", *args]))
        finished = await run_short(
            ["git", *prefix, *args],
            cwd=cwd,
            env=self._env(auth_url, env),
            timeout_seconds=self._timeout,
            stdin=stdin,
        )
        stderr = self.sanitize(finished.stderr.decode("utf-8", errors="replace"))
        if finished.timed_out:
            raise GitTimeout(shown, finished.exit_code, f"killed after {self._timeout:g} s")
        if finished.exit_code not in ok_codes:
            log.debug("%s exited %s in %s: %s", shown, finished.exit_code, cwd, stderr.strip())
            raise GitCommandError(shown, finished.exit_code, stderr)
        return GitOutput(
            finished.exit_code, finished.stdout.decode("utf-8", errors="surrogateescape"), stderr
        )

    async def out(self, args: Sequence[str], *, cwd: Path, git_dir: Path | None = None) -> str:
        """The stripped stdout of a local (no network) command that must succeed."""
        return (await self.run(args, cwd=cwd, git_dir=git_dir)).stdout.strip()
