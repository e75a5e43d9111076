"""``crewline doctor``: one line per check with OK/FAIL and what to do.

Configuration, secrets, the GitLab token and projects (``doctor_gitlab``), the database, git,
and each configured agent CLI (``doctor_agents``)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from bot.config import ConfigError, CrewlineConfig, Secrets, load_config, load_secrets
from bot.doctor_agents import check_agent
from bot.doctor_check import Check
from bot.doctor_gitlab import check_gitlab
from forge.guard import compiled as guard_compiled
from roles.sandbox import SandboxError, SandboxSettings, probe, select_sandbox
from storage import Database

MIN_GIT = (2, 30)


def run_doctor(config_file: Path) -> list[Check]:
    """Every check that can run; later checks need the configuration to have loaded."""
    checks: list[Check] = [check_git()]
    try:
        config = load_config(config_file)
    except ConfigError as error:
        checks.insert(0, Check("configuration", False, error.render().replace("\n", " ")))
        return checks
    checks.insert(
        0, Check("configuration", True, f"{config_file} loaded ({len(config.projects)} project(s))")
    )
    try:
        secrets = load_secrets()
    except ConfigError as error:
        checks.append(Check("secrets", False, "; ".join(error.problems)))
    else:
        checks.extend(check_secrets(config, secrets))
        checks.extend(check_gitlab(config, secrets.gitlab_token))
    checks.append(asyncio.run(check_database(config.storage.path)))
    checks.extend(check_agents(config))
    checks.append(check_sandbox(config.sandbox))
    checks.append(check_guard())
    return checks


def check_guard() -> Check:
    """Which guard build screens the writes: informational, both are correct."""
    if guard_compiled():
        return Check("guard", True, "compiled with mypyc")
    return Check(
        "guard",
        True,
        "pure Python; a wheel built with CREWLINE_COMPILE=1 screens about 1.5x faster",
    )


def check_sandbox(settings: SandboxSettings, check: Callable[[], str | None] = probe) -> Check:
    """Whether agents will run confined; falling back to none without being told is a FAIL."""
    try:
        selected = select_sandbox(settings, check=check)
    except SandboxError as error:
        return Check("sandbox", False, str(error))
    if selected.warning is None:
        return Check("sandbox", True, f"{selected.sandbox.name}: agents and validation confined")
    if settings.backend == "none":
        return Check("sandbox", True, f"WARNING: {selected.warning}")
    return Check("sandbox", False, selected.warning)


def check_git() -> Check:
    git = shutil.which("git")
    if git is None:
        return Check("git", False, "git is not on PATH: install git >= 2.30 (worktrees)")
    output = subprocess.run([git, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+)\.(\d+)", output)
    if match is None:
        return Check("git", False, f"cannot read the version from {output.strip()!r}")
    version = (int(match.group(1)), int(match.group(2)))
    wanted = ".".join(map(str, MIN_GIT))
    if version < MIN_GIT:
        return Check(
            "git", False, f"git {version[0]}.{version[1]} is too old: install git >= {wanted}"
        )
    return Check("git", True, f"git {version[0]}.{version[1]} (>= {wanted}, worktrees supported)")


def check_secrets(config: CrewlineConfig, secrets: Secrets) -> list[Check]:
    needed = [("CREWLINE_GITLAB_TOKEN", secrets.gitlab_token, "the bot's GitLab token")]
    if config.webhook.enabled:
        needed.append(
            ("CREWLINE_WEBHOOK_SECRET", secrets.webhook_secret, "the GitLab webhook secret")
        )
    if config.discord.enabled:
        needed.append(("CREWLINE_DISCORD_TOKEN", secrets.discord_token, "the Discord bot token"))
    checks = []
    for env, value, what in needed:
        if value is None or not value.get_secret_value():
            checks.append(Check(env, False, f"not set: export {env} (or {env}_FILE) with {what}"))
        else:
            checks.append(Check(env, True, "set"))
    return checks


async def check_database(path: Path) -> Check:
    try:
        db = await Database.open(path)
    except Exception as error:  # any failure here is the user's to fix: report it, don't crash
        return Check(
            "database", False, f"{path}: {error} (check the directory exists and is writable)"
        )
    try:
        version = await db.schema_version()
    finally:
        await db.close()
    return Check("database", True, f"{path} writable, schema version {version}")


def check_agents(config: CrewlineConfig) -> list[Check]:
    return [
        check for name, agent in sorted(config.agents.items()) for check in check_agent(name, agent)
    ]
