"""crewline's configuration: ``crewline.toml`` composed from each package's own settings
model, plus secrets from the environment.

A bad file fails at start with the key path, the bad value and what was expected
(:class:`ConfigError`); an unknown key is an error, never silently ignored. Secrets are
read only from the environment (or from a file the environment names) and held as
``SecretStr`` so they are never printed. Once read, every secret variable (and its
``_FILE`` twin) is removed from crewline's environment, so nothing crewline starts later
inherits it (see docs/decisions/0019-agent-sandbox.md for what that does and does not hide).
"""

from __future__ import annotations

import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from bot.settings import DiscordSettings, ObservabilitySettings, ScheduleSettings
from forge.settings import GitLabSettings, ProjectSettings
from forge.webhooks import WebhookSettings
from roles.sandbox import SandboxSettings
from roles.settings import AgentSettings, RolesSettings
from roles.workspace.settings import WorkspaceSettings
from storage import StorageSettings
from workflow import WorkflowSettings

CONFIG_ENV = "CREWLINE_CONFIG"
# Overrides worker_id: a Kubernetes pod sets it from its own name (the downward API).
WORKER_ENV = "CREWLINE_WORKER_ID"
DEFAULT_CONFIG = Path("crewline.toml")


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` are lines a user can act on."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def render(self) -> str:
        lines = [f"configuration error in {self.source}:"]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


SECRET_PREFIX = "CREWLINE_"


class Secrets(BaseModel):
    """Tokens, from ``CREWLINE_<NAME>`` or from the file named by ``CREWLINE_<NAME>_FILE``
    (names in any case); a value given to the constructor wins over the environment.

    Read by hand rather than with pydantic-settings: eight variables did not need its
    ~1 MB of modules in every idle host."""

    model_config = ConfigDict(extra="ignore")

    gitlab_token: SecretStr | None = None
    gitlab_token_file: Path | None = None
    gitlab_merge_token: SecretStr | None = None
    gitlab_merge_token_file: Path | None = None
    discord_token: SecretStr | None = None
    discord_token_file: Path | None = None
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        given = dict(data) if isinstance(data, Mapping) else {}
        fields = {f"{SECRET_PREFIX}{name}".upper(): name for name in cls.model_fields}
        for variable, value in os.environ.items():
            name = fields.get(variable.upper())
            if name is not None and name not in given:
                given[name] = value
        return given

    @model_validator(mode="after")
    def _read_files(self) -> Secrets:
        for name in ("gitlab_token", "gitlab_merge_token", "discord_token", "webhook_secret"):
            path: Path | None = getattr(self, f"{name}_file")
            if getattr(self, name) is None and path is not None:
                try:
                    value = path.read_text(encoding="utf-8").strip()
                except OSError as error:
                    env = f"CREWLINE_{name.upper()}_FILE"
                    raise ValueError(f"{env}={path}: cannot read it ({error.strerror})") from None
                setattr(self, name, SecretStr(value) if value else None)
        return self

    def files(self) -> list[Path]:
        """The secret files named by ``CREWLINE_*_FILE``: hidden from sandboxed commands."""
        paths = [
            self.gitlab_token_file,
            self.gitlab_merge_token_file,
            self.discord_token_file,
            self.webhook_secret_file,
        ]
        return [path.absolute() for path in paths if path is not None]

    def all_values(self) -> list[str]:
        """Every configured secret in clear text, for the guard's exact-match rule."""
        values = [
            self.gitlab_token,
            self.gitlab_merge_token,
            self.discord_token,
            self.webhook_secret,
        ]
        return [secret.get_secret_value() for secret in values if secret is not None]


class CrewlineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: str = Field(
        default_factory=socket.gethostname,
        description="This host's identity in claims, stable across restarts so a restarted "
        "process resumes its own runs; default the host name",
    )
    gitlab: GitLabSettings
    projects: list[ProjectSettings] = Field(min_length=1)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    workflow: WorkflowSettings = Field(default_factory=WorkflowSettings)
    roles: RolesSettings = Field(default_factory=RolesSettings)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    workspaces: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    runs_dir: Path = Field(
        default=Path("var/runs"), description="Agent transcripts and scratch space, per run"
    )
    prompts_dir: Path | None = Field(
        default=None, description="Templates here (plan.md, implement.md...) replace the built-in"
    )

    @model_validator(mode="after")
    def _references(self) -> CrewlineConfig:
        seen: set[str] = set()
        for project in self.projects:
            if project.path in seen:
                raise ValueError(f"project {project.path!r} is listed twice in [[projects]]")
            seen.add(project.path)
        known = sorted(self.agents)
        references = [("roles.agent", self.roles.agent)]
        references += [
            (f"roles.{name}.agent", role.agent) for name, role in self.roles.by_name().items()
        ]
        references += [(f"projects[{i}].agent", p.agent) for i, p in enumerate(self.projects)]
        for where, name in references:
            if name is not None and name not in self.agents:
                raise ValueError(
                    f"{where} = {name!r} names no agent: define [agents.{name}] or use one of {known}"
                )
        self.workflow.build()  # raises WorkflowError (a ValueError) listing every problem
        return self


def config_path(
    explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path:
    """``--config PATH``, else ``$CREWLINE_CONFIG``, else ``./crewline.toml``."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return DEFAULT_CONFIG


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> CrewlineConfig:
    """Read, validate and resolve the configuration file; raise :class:`ConfigError`.
    A non-empty ``CREWLINE_WORKER_ID`` in the environment replaces ``worker_id``."""
    environ = os.environ if environ is None else environ
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            source,
            [
                f"no configuration file at {path}: copy deploy/crewline.example.toml there, "
                f"or pass --config PATH / set {CONFIG_ENV}"
            ],
        ) from None
    except OSError as error:
        raise ConfigError(source, [f"cannot read {path}: {error.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(source, [f"not valid TOML: {error}"]) from None
    if environ.get(WORKER_ENV):
        data["worker_id"] = environ[WORKER_ENV]
    try:
        config = CrewlineConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, describe_errors(error, data)) from None
    return _resolve_paths(config, path.parent)


SECRET_ENV = frozenset(f"{SECRET_PREFIX}{name}".upper() for name in Secrets.model_fields)


def drop_secret_env(environ: typing.MutableMapping[str, str] | None = None) -> list[str]:
    """Remove every ``CREWLINE_<secret>`` and ``CREWLINE_<secret>_FILE`` variable (any case,
    as :class:`Secrets` reads them) from ``environ`` (default: this process's); the names
    removed."""
    environ = os.environ if environ is None else environ
    dropped = [name for name in list(environ) if name.upper() in SECRET_ENV]
    for name in dropped:
        del environ[name]
    return dropped


def load_secrets() -> Secrets:
    """The secrets from the environment, which no longer holds them afterwards (read once:
    a second call finds nothing)."""
    try:
        return Secrets()
    except ValidationError as error:
        raise ConfigError(
            "environment", [e["msg"].removeprefix("Value error, ") for e in error.errors()]
        ) from None
    finally:
        drop_secret_env()


def _resolve_paths(config: CrewlineConfig, base: Path) -> CrewlineConfig:
    """Relative paths in the file are relative to the file, not to the current directory."""

    def resolved(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    storage = config.storage.model_copy(update={"path": resolved(config.storage.path)})
    workspaces = config.workspaces.model_copy(update={"root": resolved(config.workspaces.root)})
    return config.model_copy(
        update={
            "storage": storage,
            "workspaces": workspaces,
            "runs_dir": resolved(config.runs_dir),
            "prompts_dir": resolved(config.prompts_dir) if config.prompts_dir else None,
        }
    )


_SECRET_HINTS = {
    "token": "CREWLINE_GITLAB_TOKEN (or CREWLINE_DISCORD_TOKEN)",
    "merge_token": "CREWLINE_GITLAB_MERGE_TOKEN",
    "secret": "CREWLINE_WEBHOOK_SECRET",
    "webhook_secret": "CREWLINE_WEBHOOK_SECRET",
}


def describe_errors(error: ValidationError, data: Mapping[str, Any]) -> list[str]:
    """One actionable line per validation error: key path, bad value, what was expected."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = _dotted(loc)
        if item["type"] == "extra_forbidden":
            name = str(loc[-1]) if loc else ""
            if name in _SECRET_HINTS:
                problems.append(
                    f"{key}: secrets are not read from the file; set {_SECRET_HINTS[name]} in the environment"
                )
                continue
            allowed = _allowed_keys(loc[:-1])
            hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
            problems.append(f"{key}: unknown key{hint}")
        elif item["type"] == "missing":
            problems.append(f"{key}: missing, it is required")
        else:
            message = item["msg"].removeprefix("Value error, ")
            if loc:
                value = _lookup(data, loc)
                problems.append(f"{key} = {value!r}: {message}")
            else:
                problems.append(message)
    return problems


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _lookup(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts, walking nested models, lists and dicts."""
    annotation: Any = CrewlineConfig
    for part in loc:
        annotation = _unwrap_optional(annotation)
        origin = typing.get_origin(annotation)
        if origin in (list, dict):
            annotation = typing.get_args(annotation)[
                -1
            ]  # the item type; ``part`` is an index or key
            continue
        fields = getattr(annotation, "model_fields", {})
        if part not in fields:
            return []
        annotation = fields[part].annotation
    fields = getattr(_unwrap_optional(annotation), "model_fields", None)
    return sorted(fields) if fields else []


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union) and len(args) == 1:
        return args[0]
    return annotation
