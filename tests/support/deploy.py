"""Readers of the deployment files (the Dockerfile, the compose file, the systemd unit) and the
real crewline command line they are checked against, for tests/test_deploy.py."""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bot.cli import build_parser
from bot.config import Secrets
from forge.webhooks.settings import WebhookSettings

ROOT = Path(__file__).resolve().parents[2]


DEPLOY = ROOT / "deploy"


DEFAULT_PORT: int = WebhookSettings.model_fields["port"].default


DRAIN_SECONDS: float = WebhookSettings.model_fields["drain_timeout_seconds"].default


SECRET_FIELDS = frozenset(Secrets.model_fields)


def crewline_argv() -> list[str]:
    """The console script installed next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("crewline")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "bot.cli"]


@functools.cache
def help_text(*command: str) -> str:
    """``crewline COMMAND --help``, which must exit 0 and describe that command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
    result = subprocess.run(
        [*crewline_argv(), *command, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "COLUMNS": "200"},
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, f"crewline {' '.join(command)} --help: {result.stderr}"
    assert result.stdout.startswith(f"usage: crewline {' '.join(command)} "), result.stdout
    return result.stdout


def assert_real_command(argv: list[str]) -> None:
    """``argv`` (after ``crewline``) is a command crewline has, with options it lists."""
    words = [arg for arg in argv if not arg.startswith("-")][:1]
    assert words, f"no crewline command in {argv}"
    listed = help_text(*words)
    for arg in argv:
        if arg.startswith("-"):
            assert re.search(rf"(^|[\s,\[]){re.escape(arg.split('=')[0])}\b", listed), (
                f"`crewline {words[0]} --help` does not list {arg}"
            )
    parsed = build_parser().parse_args(argv)
    handler = getattr(parsed, "handler", None)
    assert handler is not None and handler.__name__ == f"cmd_{words[0]}", argv


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continuation
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def only(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for kw, rest in instructions if kw == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def docker_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def compose_text() -> str:
    return (DEPLOY / "compose.yaml").read_text(encoding="utf-8")


def compose() -> dict[str, Any]:
    document = yaml.safe_load(compose_text())
    assert isinstance(document, dict)
    return document


def compose_with_worker() -> dict[str, Any]:
    """compose.yaml with its commented worker service (and its volume) uncommented."""
    lines, inside = [], False
    for line in compose_text().splitlines():
        marker = line.strip()
        if marker in ("# >>> worker", "# <<< worker"):
            inside = marker == "# >>> worker"
            continue
        if inside or marker == "# crewline-worker-data:":
            line = re.sub(r"^(\s*)# ?", r"\1", line)
        lines.append(line)
    document = yaml.safe_load("\n".join(lines))
    assert isinstance(document, dict)
    return document


def container_toml() -> str:
    """The commented crewline.toml block compose.yaml tells users to put in a container."""
    match = re.search(
        r"^# --- crewline\.toml in a container ---\n(.*?)^# --- end ---$",
        compose_text(),
        re.S | re.M,
    )
    assert match, "compose.yaml lost its container configuration block"
    return "\n".join(re.sub(r"^# ?", "", line) for line in match.group(1).splitlines())


def unit() -> dict[str, list[tuple[str, str]]]:
    """Sections of deploy/crewline.service, each a list of (key, value) in file order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in (DEPLOY / "crewline.service").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"a setting outside any section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def setting(section: list[tuple[str, str]], key: str) -> str:
    values = [value for name, value in section if name == key]
    assert len(values) == 1, f"expected one {key}=, found {values}"
    return values[0]


def within(path: PurePosixPath | Path, directory: str) -> bool:
    return PurePosixPath(path).is_relative_to(PurePosixPath(directory))


def named_volume(service: dict[str, Any], target: str) -> str:
    for mount in service["volumes"]:
        source, _, rest = str(mount).partition(":")
        if rest.split(":")[0] == target:
            return source
    raise AssertionError(f"nothing is mounted at {target}")


# What the docs name as a file of the repository.
_TOP = "bot|roles|forge|storage|workflow|tests|deploy|docs|bench"
_PATH = re.compile(rf"(?<![\w./:-])((?:{_TOP})/[\w./-]*|pyproject\.toml|README\.md)")


def repo_paths(text: str) -> set[str]:
    return {match.rstrip(".,;:") for match in _PATH.findall(text)}
