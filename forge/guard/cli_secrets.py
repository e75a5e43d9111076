"""Credentials typed on a command line: ``--password VALUE``, ``docker login -p VALUE``,
``mysql -pVALUE``, ``redis-cli -a VALUE``, ``curl -u user:VALUE``.

A value that is a variable (``$TOKEN``, ``${TOKEN}``, ``$(cat …)``), a placeholder, a
path, ``-`` (standard input) or a template passes; what remains is a literal secret in a
script, a CI file or a pasted shell session.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from forge.guard.scantext import ScanText, find_matches, register_anchors
from forge.guard.secret_rules import (
    ROTATE,
    SecretHit,
    character_classes,
    looks_like_placeholder,
)

RULE: Final = "secret.cli_credential"
_VALUE: Final = r"[\"']?(?P<secret>[^\s\"'`]{4,256}+)"
_LONG_FLAG: Final = re.compile(
    r"--(?:password|passwd|pass|token|api-key|apikey|secret|client-secret|auth-token"
    r"|access-token|private-token)(?:=|[ \t]{1,4}+)" + _VALUE
)
_LONG_FLAG_ANCHORS: Final = (
    "--pass", "--token", "--api", "--secret", "--client-secret", "--auth-token",
    "--access-token", "--private-token",
)  # fmt: skip
_SHORT_FLAG: Final = re.compile(r"[ \t]-(?P<flag>[pa])(?:[ \t]{1,4}+)?" + _VALUE)
_USER_PASSWORD: Final = re.compile(
    r"(?:[ \t]-u|--user)(?:=|[ \t]{1,4}+)[\"']?[^\s:\"'$]{1,64}+:(?P<secret>[^\s\"'`@]{1,256}+)"
)
# The commands whose -p (or, for redis-cli, -a) takes a password.
_LOGIN_COMMANDS: Final = (
    "docker login", "podman login", "buildah login", "nerdctl login", "skopeo login",
    "helm registry login", "oc login", "crane auth login", "sshpass", "twine upload",
)  # fmt: skip
_MYSQL_COMMANDS: Final = ("mysql", "mariadb")
_LONG_FLAGS: Final = register_anchors(_LONG_FLAG_ANCHORS, "lowered")
_P_FLAGS: Final = register_anchors((" -p", "\t-p"), "lowered")
_A_FLAGS: Final = register_anchors((" -a", "\t-a"), "lowered")
_USER_FLAGS: Final = register_anchors((" -u", "\t-u", "--user"), "lowered")
# A short flag counts only on the command line of one of these commands (see below).
_P_COMMANDS: Final = register_anchors((*_LOGIN_COMMANDS, *_MYSQL_COMMANDS), "lowered")
_A_COMMANDS: Final = register_anchors(("redis-cli",), "lowered")
# The bits of ``ScanText.found`` without one of which ``cli_hits`` finds nothing.
GATE: Final = _LONG_FLAGS.mask | _P_FLAGS.mask | _A_FLAGS.mask | _USER_FLAGS.mask
_DEV_WORDS: Final = ("password", "passwd", "secret", "changeme", "example", "your", "admin", "root")


def _is_literal(value: str) -> bool:
    if value.startswith(("$", "-", "%", "<", "{", "/", "./", "~", "@")):
        return False
    if "${" in value or "{{" in value or "$(" in value:
        return False
    lowered = value.lower()
    if looks_like_placeholder(value) or any(word in lowered for word in _DEV_WORDS):
        return False
    return len(value) >= 6 and character_classes(value) >= 2


def _command_before(lowered: str, position: int) -> str:
    """The start of the command line holding ``position`` (at most 200 characters back)."""
    start = lowered.rfind("\n", max(0, position - 200), position) + 1
    return lowered[max(start, position - 200) : position]


def cli_hits(scan: ScanText) -> Iterator[SecretHit]:
    reason = f"a credential on a command line; {ROTATE}"
    for match in scan.matches(_LONG_FLAG, _LONG_FLAGS, lowered=True):
        start, end = match.span("secret")
        if _is_literal(scan.text[start:end]):
            yield SecretHit(RULE, start, end, reason)
    # A flag whose command is nowhere in the text cannot count: not searched for.
    flags = (scan.present(_P_FLAGS) if scan.has_any(_P_COMMANDS) else ()) + (
        scan.present(_A_FLAGS) if scan.has_any(_A_COMMANDS) else ()
    )
    short_flags = find_matches(_SHORT_FLAG, scan.lowered, flags) if flags else ()
    for match in short_flags:
        start, end = match.span("secret")
        if not _is_literal(scan.text[start:end]):
            continue
        command = _command_before(scan.lowered, match.start())
        attached = match.start("secret") == match.end("flag")
        if match.group("flag") == "a":
            wanted = "redis-cli" in command
        else:
            wanted = any(name in command for name in _LOGIN_COMMANDS) or (
                attached and any(name in command for name in _MYSQL_COMMANDS)
            )
        if wanted:
            yield SecretHit(RULE, start, end, reason)
    for match in scan.matches(_USER_PASSWORD, _USER_FLAGS, lowered=True):
        start, end = match.span("secret")
        if _is_literal(scan.text[start:end]):
            yield SecretHit(RULE, start, end, reason)
