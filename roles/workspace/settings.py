"""Settings of the git workspaces the roles work in (``[workspaces]`` in crewline.toml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class WorkspaceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path = Field(
        default=Path("var/workspaces"),
        description="Directory of the mirror clones and worktrees; crewline owns everything in it",
    )
    max_disk_mb: float = Field(
        default=5000,
        ge=0,
        description="Disk budget of the root; the oldest finished worktrees are pruned first",
    )
    git_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A git command (clone, fetch, push...) is killed after this",
    )
    lease_ttl_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Lifetime of a workspace lease; a run renews it while it works",
    )
