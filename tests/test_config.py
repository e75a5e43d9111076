"""Configuration: the example file is valid and complete; bad files fail with the key
path, the bad value and what was expected; secrets come only from the environment."""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from bot.config import (
    ConfigError,
    CrewlineConfig,
    Secrets,
    config_path,
    load_config,
    load_secrets,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "crewline.example.toml"

MINIMAL = """
[gitlab]
url = "https://gitlab.example.com"

[[projects]]
path = "group/app"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "crewline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load_config(path)
    return error.value.problems


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.gitlab.url == "https://gitlab.example.com"
    assert config.projects[0].path == "group/app"
    assert config.agents["claude"].executable() == "claude"
    assert config.storage.path.is_absolute()
    assert config.storage.path == (EXAMPLE.parent / "var" / "crewline.sqlite3").resolve()


def _model_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        annotation = field.annotation
        candidates = [annotation, *typing.get_args(annotation)]
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys |= _model_keys(candidate, f"{prefix}{name}.")
    return keys


def test_example_config_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    mentioned = set(
        re.findall(r"^\s*#?\s*\[{1,2}([\w.]+)\]{1,2}|^\s*#?\s*\"?([\w-]+)\"?\s*=", text, re.M)
    )
    words = {part for pair in mentioned for item in pair if item for part in item.split(".")}
    missing = sorted(_model_keys(CrewlineConfig) - words)
    assert missing == [], f"deploy/crewline.example.toml does not document: {missing}"


def test_minimal_config_uses_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.projects[0].target_branch == "main"
    assert config.roles.dev.concurrency == 1
    assert config.storage.path == (tmp_path / "var" / "crewline.sqlite3").resolve()


def test_unknown_key_is_an_error_naming_the_allowed_keys(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, MINIMAL + "\n[roles.dev]\nconcurency = 2\n"))
    assert len(problems) == 1
    assert problems[0].startswith("roles.dev.concurency: unknown key; expected one of:")
    assert "concurrency" in problems[0]


def test_bad_value_names_key_value_and_expectation(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, MINIMAL + "\n[roles.dev]\nconcurrency = -1\n"))
    assert problems == ["roles.dev.concurrency = -1: Input should be greater than or equal to 1"]


def test_qa_round_trips_default_and_bounds(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).roles.qa.max_round_trips == 3
    only_qa = MINIMAL + "\n[roles.qa]\nmax_round_trips = 0\n"
    assert problems_of(write(tmp_path, only_qa)) == [
        "roles.qa.max_round_trips = 0: Input should be greater than or equal to 1"
    ]
    # The bound is QA's: the developer's settings do not take it.
    problems = problems_of(write(tmp_path, MINIMAL + "\n[roles.dev]\nmax_round_trips = 2\n"))
    assert problems[0].startswith("roles.dev.max_round_trips: unknown key")


def test_bad_project_path_and_url(tmp_path: Path) -> None:
    text = '[gitlab]\nurl = "gitlab.example.com"\n\n[[projects]]\npath = "app"\n'
    problems = problems_of(write(tmp_path, text))
    assert (
        "gitlab.url = 'gitlab.example.com': expected an http(s) URL such as https://gitlab.example.com"
        in problems
    )
    assert any(p.startswith("projects[0].path = 'app': expected a project path") for p in problems)


def test_missing_required_sections(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "[storage]\npath = 'x.db'\n"))
    assert "gitlab: missing, it is required" in problems
    assert "projects: missing, it is required" in problems


def test_secret_in_file_is_refused_with_the_environment_variable_to_use(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'url = "https://gitlab.example.com"', 'url = "https://g.example.com"\ntoken = "glpat-x"'
    )
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == 1
    assert "gitlab.token: secrets are not read from the file" in problems[0]
    assert "CREWLINE_GITLAB_TOKEN" in problems[0]
    assert "glpat-x" not in problems[0]


def test_undefined_agent_reference(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, MINIMAL + '\n[roles.pm]\nagent = "codex"\n'))
    assert problems == [
        "roles.pm.agent = 'codex' names no agent: define [agents.codex] or use one of []"
    ]


def test_command_agent_needs_a_command(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, MINIMAL + '\n[agents.mine]\nkind = "command"\n'))
    assert problems == [
        "agents.mine = {'kind': 'command'}: an agent of kind 'command' needs 'command' (the executable to run)"
    ]


def test_invalid_workflow_override_is_reported(tmp_path: Path) -> None:
    text = MINIMAL + '\n[workflow.transitions]\n"dev-running.succeeded" = "nowhere"\n'
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == 1 and "nowhere" in problems[0]


def test_toml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "[gitlab\nurl=1"))[0].startswith("not valid TOML:")
    missing = problems_of(tmp_path / "absent.toml")
    assert "copy deploy/crewline.example.toml" in missing[0]


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config_path("a.toml", {"CREWLINE_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"CREWLINE_CONFIG": "b.toml"}) == Path("b.toml")
    assert config_path(None, {}) == Path("crewline.toml")


def test_secrets_from_environment_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("glpat-fromfile-0123456789\n", encoding="utf-8")
    monkeypatch.setenv("CREWLINE_GITLAB_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("CREWLINE_WEBHOOK_SECRET", "hook-secret-value")
    monkeypatch.delenv("CREWLINE_GITLAB_TOKEN", raising=False)
    secrets = load_secrets()
    assert secrets.gitlab_token is not None
    assert secrets.gitlab_token.get_secret_value() == "glpat-fromfile-0123456789"
    assert "glpat-fromfile" not in repr(secrets) and "hook-secret-value" not in str(secrets)
    assert set(secrets.all_values()) == {"glpat-fromfile-0123456789", "hook-secret-value"}


def test_unreadable_secret_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREWLINE_GITLAB_TOKEN", raising=False)
    monkeypatch.setenv("CREWLINE_GITLAB_TOKEN_FILE", str(tmp_path / "nope"))
    with pytest.raises(ConfigError) as error:
        load_secrets()
    assert (
        f"CREWLINE_GITLAB_TOKEN_FILE={tmp_path / 'nope'}: cannot read it" in error.value.problems[0]
    )


def test_secrets_leave_the_environment_once_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "discord"
    token_file.write_text("discord-token-from-file", encoding="utf-8")
    monkeypatch.setenv("crewline_gitlab_token", "glpat-lowercase-name-0123")  # read in any case
    monkeypatch.setenv("CREWLINE_DISCORD_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("CREWLINE_CONFIG", "/etc/crewline/crewline.toml")
    secrets = load_secrets()
    assert secrets.gitlab_token is not None and secrets.discord_token is not None
    assert secrets.files() == [token_file]
    leftover = {name for name in os.environ if name.upper().startswith("CREWLINE_")}
    assert leftover == {"CREWLINE_CONFIG"}  # not a secret: kept


def test_secrets_read_the_environment_in_any_case_and_the_constructor_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CREWLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("crewline_gitlab_token", "from-the-environment")
    monkeypatch.setenv("CREWLINE_WEBHOOK_SECRET", "hook")
    monkeypatch.setenv("CREWLINE_NOT_A_SECRET", "ignored")
    read = Secrets()
    assert read.gitlab_token is not None
    assert read.gitlab_token.get_secret_value() == "from-the-environment"
    assert read.webhook_secret is not None and read.webhook_secret.get_secret_value() == "hook"
    given = Secrets(gitlab_token=SecretStr("given"))
    assert given.gitlab_token is not None and given.gitlab_token.get_secret_value() == "given"
    assert given.webhook_secret is not None  # the rest still from the environment
