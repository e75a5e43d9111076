"""``[sandbox]`` in crewline.toml: how agents and validation commands are confined."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Backend = Literal["bwrap", "none"]


class SandboxSettings(BaseModel):
    """Also accepted as a plain string: ``sandbox = "bwrap"`` means ``[sandbox] backend``."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend | None = Field(
        default=None,
        description='"bwrap" (fail at start if bubblewrap cannot run) or "none" (no '
        "confinement); unset: bwrap when it works here, else none with a loud warning",
    )
    read_only: list[Path] = Field(
        default_factory=list,
        description="Extra absolute paths a sandboxed command may read (e.g. an agent's install)",
    )
    writable: list[Path] = Field(
        default_factory=list,
        description="Extra absolute paths a sandboxed command may write (e.g. a shared cache)",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"backend": data} if isinstance(data, str) else data

    @field_validator("read_only", "writable")
    @classmethod
    def _absolute(cls, paths: list[Path]) -> list[Path]:
        for path in paths:
            if not path.is_absolute():
                raise ValueError(f"{str(path)!r} must be an absolute path")
        return paths
