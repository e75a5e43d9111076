"""The composition root: builds storage, the GitLab layer, agents, workspaces and the
engine from the configuration, and tears them down in the right order."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.config import ConfigError, CrewlineConfig, Secrets
from forge.claims import Claims
from forge.client import GitLabClient, RetryPolicy
from forge.gateway import Gateway
from forge.guard import Guard
from forge.pending_notes import PendingNotes
from forge.trust import IdentityUnknown
from roles.agents.base import Agent, AgentConfigError
from roles.agents.registry import build_agent
from roles.context import Services
from roles.dev import DevRole
from roles.engine.loop import Engine, Role
from roles.notify import Desk, Notifier
from roles.pm.role import PmRole
from roles.prompts import Prompts
from roles.qa.role import QaRole
from roles.review import ReviewRole
from roles.sandbox import Sandbox, SandboxError, select_sandbox
from roles.settings import AgentSettings
from roles.workspace.workspaces import Workspaces
from storage import Storage

log = logging.getLogger(__name__)

# The built-in demo agent runs through the command adapter like any other program.
DEMO_AGENT_ARGS = ["-m", "roles.agents.demo_agent"]


def agent_settings(
    config: CrewlineConfig, role: str, project_agent: str | None
) -> tuple[str, AgentSettings]:
    """Which agent a role uses: the project's, else the role's, else the default."""
    roles = config.roles
    name = project_agent or roles.by_name()[role].agent or roles.agent
    if name is None:
        raise ConfigError(
            "configuration",
            [f"no agent for the {role} role: set roles.agent or roles.{role}.agent"],
        )
    settings = config.agents[name]
    if settings.kind == "demo":
        settings = AgentSettings(
            kind="command",
            command=sys.executable,
            args=DEMO_AGENT_ARGS,
            timeout_seconds=settings.timeout_seconds,
        )
    return name, settings


def build_agents(
    config: CrewlineConfig, sandbox: Sandbox | None = None
) -> tuple[dict[str, Agent], dict[str, float]]:
    # Roles share one agent per role across projects; a per-project agent applies when
    # one project is configured (the common case) and is otherwise the role's default.
    project_agent = config.projects[0].agent if len(config.projects) == 1 else None
    agents: dict[str, Agent] = {}
    timeouts: dict[str, float] = {}
    for role in config.roles.by_name():
        name, settings = agent_settings(config, role, project_agent)
        try:
            agents[role] = build_agent(name, settings, sandbox)
        except AgentConfigError as error:
            raise ConfigError("configuration", [str(error)]) from None
        timeouts[role] = settings.timeout_seconds
    return agents, timeouts


@dataclass
class Runtime:
    config: CrewlineConfig
    storage: Storage
    client: GitLabClient
    services: Services
    engine: Engine
    merge_client: GitLabClient | None = None
    # Set when agents run unconfined because bubblewrap does not work here: say it at start.
    sandbox_warning: str | None = None

    async def close(self) -> None:
        await self.engine.stop()
        await self.client.close()
        if self.merge_client is not None:
            await self.merge_client.close()
        await self.storage.close()


def default_roles(prompts: Prompts) -> Mapping[str, Role]:
    return {
        "pm": PmRole(prompts),
        "dev": DevRole(prompts),
        "review": ReviewRole(prompts),
        "qa": QaRole(prompts),
    }


async def build_runtime(
    config: CrewlineConfig,
    secrets: Secrets,
    *,
    notifier: Notifier,
    desk: Desk | None = None,
) -> Runtime:
    """Everything `crewline run`, `worker` and `demo` need, opened and wired."""
    if secrets.gitlab_token is None:
        raise ConfigError(
            "environment",
            ["CREWLINE_GITLAB_TOKEN is not set: crewline needs the bot's GitLab token"],
        )
    token = secrets.gitlab_token.get_secret_value()
    try:
        selected = await asyncio.to_thread(
            select_sandbox, config.sandbox, hidden=hidden_paths(config, secrets)
        )
    except SandboxError as error:
        raise ConfigError("sandbox", [str(error)]) from None
    if selected.warning:
        log.warning("sandbox: %s", selected.warning)
    agents, timeouts = build_agents(config, selected.sandbox)
    storage = await Storage.open(config.storage)
    settings = config.gitlab
    retry = RetryPolicy(
        max_retries=settings.max_retries, budget_seconds=settings.retry_budget_seconds
    )
    client = GitLabClient(settings, token, retry=retry)
    workflow = config.workflow.build()
    guard = Guard(secrets.all_values())
    gateway = Gateway(
        client, guard=guard, audit=storage.audit, workflow=workflow, who=config.worker_id
    )
    gateway.pending_notes = PendingNotes(storage.settings)
    merge_client = merger = None
    identities = []
    if secrets.gitlab_merge_token is not None:
        merge_client = GitLabClient(
            settings, secrets.gitlab_merge_token.get_secret_value(), retry=retry
        )
        merge_gateway = Gateway(
            merge_client,
            guard=guard,
            audit=storage.audit,
            workflow=workflow,
            who=f"{config.worker_id}:merge-identity",
        )
        merger, identities = merge_gateway.merges, [merge_gateway.calls]
    try:
        # Before anything is read: only these users' notes carry crewline's markers.
        await gateway.trust.learn(*identities)
    except IdentityUnknown as unknown:
        for opened in (client, merge_client):
            if opened is not None:
                await opened.close()
        await storage.close()
        raise ConfigError("gitlab", [str(unknown)]) from None
    claims = Claims(
        gateway,
        storage.leases,
        worker=config.worker_id,
        ttl_seconds=config.schedule.claim_ttl_seconds,
    )
    workspaces = Workspaces(config.workspaces, storage.leases, config.worker_id, token)
    services = Services(
        gateway=gateway,
        storage=storage,
        claims=claims,
        workflow=workflow,
        projects={project.path: project for project in config.projects},
        roles=config.roles,
        agents=agents,
        workspaces=workspaces,
        notifier=notifier,
        desk=desk if desk is not None else _NoDesk(),
        worker=config.worker_id,
        runs_dir=Path(config.runs_dir),
        agent_timeouts=timeouts,
        merger=merger,
        sandbox=selected.sandbox,
    )
    services.fleet.max_age = config.schedule.poll_seconds  # the control issues, once per poll
    engine = Engine(services, default_roles(Prompts(config.prompts_dir)))
    return Runtime(config, storage, client, services, engine, merge_client, selected.warning)


def hidden_paths(config: CrewlineConfig, secrets: Secrets) -> list[Path]:
    """What no sandboxed command may see: the database (and its WAL and journal), every
    workspace (mirrors, worktrees, git's HOME), every run's transcripts, the secret files.
    The launch's own worktree and transcript directory are mounted back on top."""
    database = config.storage.path.absolute()
    siblings = [
        database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal")
    ]
    return [
        database,
        *siblings,
        config.workspaces.root.absolute(),
        config.runs_dir.absolute(),
        *secrets.files(),
    ]


class _NoDesk:
    """Without a surface, gates wait for a human in GitLab (labels or `crewline` commands)."""

    async def request(self, gate: object) -> None:
        return None
