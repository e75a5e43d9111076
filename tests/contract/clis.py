"""Installing the real agent CLIs for the contract tests, once, into a cache directory.

aider comes from PyPI into its own virtual environment; the Codex CLI, Claude Code and the
Gemini CLI from npm (the Codex package ships its native binary). An install that fails fails
the test: these tests exist to prove crewline against the real CLIs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from roles.agents.registry import ADAPTERS
from roles.sandbox import Sandbox, SandboxSettings, select_sandbox

CACHE = Path(os.environ.get("CREWLINE_CONTRACT_CACHE", Path.home() / ".cache/crewline-contract"))
NPM_PACKAGES = {
    "codex": "@openai/codex",
    "claude": "@anthropic-ai/claude-code",
    "gemini": "@google/gemini-cli",
}

# Everything that could make a CLI reach the internet, off.
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "GEMINI_TELEMETRY_ENABLED": "false",
    "NO_UPDATE_NOTIFIER": "1",
}


def default_sandbox() -> Sandbox:
    """The sandbox crewline chooses with default settings, which must be bubblewrap here:
    these tests prove the CLIs confined as users run them, never unconfined by accident."""
    selected = select_sandbox(SandboxSettings())
    assert selected.warning is None and selected.sandbox.name == "bwrap", selected.warning
    return selected.sandbox


def tested(kind: str) -> str:
    versions = ADAPTERS[kind].tested_versions
    assert versions is not None
    return versions.tested


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, (
        f"installing {what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )


def _reports(executable: Path, version: str) -> bool:
    if not executable.exists():
        return False
    shown = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    return version in shown.stdout


def aider() -> Path:
    """The aider executable of the tested version, installed from PyPI when missing."""
    venv = CACHE / "aider"
    executable = venv / "bin" / "aider"
    version = tested("aider")
    marker = venv / f".installed-{version}"
    if not marker.exists() and _reports(executable, version):
        marker.touch()  # installed by hand or by an older set-up: no need to ask pip again
    if not marker.exists():
        _run([sys.executable, "-m", "venv", str(venv)], "aider's virtual environment")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        _run([*pip, f"aider-chat=={version}"], f"aider-chat {version}")
        marker.touch()
    return executable


def npm_cli(kind: str) -> Path:
    """The npm CLI ``kind`` (codex, claude, gemini) of the tested version."""
    prefix = CACHE / "npm"
    executable = prefix / "node_modules" / ".bin" / kind
    version = tested(kind)
    marker = prefix / f".installed-{kind}-{version}"
    manifest = prefix / "node_modules" / NPM_PACKAGES[kind] / "package.json"
    installed = json.loads(manifest.read_text()).get("version") if manifest.exists() else None
    if not marker.exists() and installed == version:
        marker.touch()
    if not marker.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        package = f"{NPM_PACKAGES[kind]}@{version}"
        _run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), package], package
        )
        marker.touch()
    return executable
