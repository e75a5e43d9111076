"""``crewline doctor``'s agent checks: each configured CLI's version against the range its
adapter was tested with, the flags crewline passes (from the CLI's own ``--help``), and
whether it is logged in, where the CLI can tell without a model call."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence

from bot.doctor_check import Check
from roles.agents.cli import CliAgent
from roles.agents.process import agent_environment, env_allow_list
from roles.agents.registry import ADAPTERS
from roles.settings import AgentSettings

PROBE_TIMEOUT_SECONDS = 60.0
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")
NPM_PACKAGES = {
    "codex": "@openai/codex",
    "claude": "@anthropic-ai/claude-code",
    "gemini": "@google/gemini-cli",
}


def check_agent(name: str, settings: AgentSettings) -> list[Check]:
    """The lines for one configured agent; the built-in demo agent needs no check."""
    label = f"agent {name}"
    executable = settings.executable()
    if executable is None:
        return [Check(label, True, "built-in demo agent")]
    path = shutil.which(executable)
    if path is None:
        return [
            Check(
                label,
                False,
                f"{executable!r} is not on PATH: install it or set agents.{name}.command",
            )
        ]
    adapter = ADAPTERS[settings.kind]
    if adapter.tested_versions is None:
        return [Check(label, True, f"{path} (a generic command: no version or flags to check)")]
    env = agent_environment(env_allow_list(settings.env_allow))
    return [
        _version(label, path, adapter, env),
        _flags(label, path, adapter, env),
        _login(name, path, adapter, env),
    ]


def _probe(argv: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str] | str:
    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`{' '.join(argv)}` could not run: {error}"


def _install_hint(kind: str, version: str) -> str:
    if kind == "aider":
        return f"`pip install aider-chat=={version}` (in the agent's own virtual environment)"
    return f"`npm install -g {NPM_PACKAGES[kind]}@{version}`"


def _version(label: str, path: str, adapter: type[CliAgent], env: dict[str, str]) -> Check:
    tested = adapter.tested_versions
    assert tested is not None
    done = _probe([path, "--version"], env)
    if isinstance(done, str):
        return Check(f"{label} version", False, done)
    match = _VERSION.search(done.stdout + done.stderr)
    if match is None:
        shown = (done.stdout + done.stderr).strip()[:120]
        return Check(f"{label} version", False, f"cannot read a version from {shown!r}")
    version = match.group(0)
    if not tested.accepts(version):
        return Check(
            f"{label} version",
            False,
            f"{adapter.kind} {version} is outside the range crewline was tested with "
            f"({tested.describe()}): install {_install_hint(adapter.kind, tested.tested)}",
        )
    return Check(f"{label} version", True, f"{adapter.kind} {version} ({tested.describe()})")


def _flags(label: str, path: str, adapter: type[CliAgent], env: dict[str, str]) -> Check:
    done = _probe([path, *adapter.help_args], env)
    if isinstance(done, str):
        return Check(f"{label} flags", False, done)
    listed = done.stdout + done.stderr
    missing = [
        flag for flag in adapter.passed_flags if not re.search(rf"{re.escape(flag)}\b", listed)
    ]
    if missing:
        tested = adapter.tested_versions
        assert tested is not None
        return Check(
            f"{label} flags",
            False,
            f"`{adapter.kind} {' '.join(adapter.help_args)}` does not list "
            f"{', '.join(missing)}, which crewline passes: install "
            f"{_install_hint(adapter.kind, tested.tested)}",
        )
    return Check(f"{label} flags", True, f"all {len(adapter.passed_flags)} flags crewline passes")


def _login(name: str, path: str, adapter: type[CliAgent], env: dict[str, str]) -> Check:
    label = f"agent {name}"
    if adapter.kind == "gemini":
        keys = [key for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY") if env.get(key)]
        if keys or env.get("GOOGLE_GENAI_USE_VERTEXAI") or env.get("GOOGLE_GENAI_USE_GCA"):
            return Check(f"{label} login", True, f"credentials in {', '.join(keys) or 'env'}")
        return Check(
            f"{label} login",
            True,
            "not checked: Gemini reads GEMINI_API_KEY (add it to env_allow) or the auth set "
            "in ~/.gemini/settings.json; a turn fails with status 41 when neither is there",
        )
    if adapter.login_args is None:
        return Check(
            f"{label} login",
            True,
            f"not checked: {adapter.kind} reads its provider's API key from the environment; "
            f"add that variable to agents.{name}.env_allow",
        )
    done = _probe([path, *adapter.login_args], env)
    if isinstance(done, str):
        return Check(f"{label} login", False, done)
    said = " ".join((done.stdout + done.stderr).split())[:160]
    if done.returncode != 0:
        return Check(f"{label} login", False, f"not logged in ({said}): {adapter.login_fix}")
    return Check(f"{label} login", True, f"logged in ({said})")
