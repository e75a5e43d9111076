"""Generic secret assignments: ``password = "..."``, ``api_key: ...``, ``SECRET_KEY=...``.

A value is reported only when the key names a credential, the value is a literal (not
an expression, variable, path, URL or placeholder) of at least 16 characters, and it
looks random (Shannon entropy over a threshold). The rules lean towards passing real
code: a false positive blocks real work, and the formats with a recognisable shape
are caught by ``secret_rules`` regardless of how they are assigned.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from forge.guard.entropy import shannon_entropy
from forge.guard.scantext import ScanText, find_matches
from forge.guard.secret_rules import ROTATE, SecretHit, looks_like_placeholder

RULE = "secret.generic_assignment"
URL_RULE = "secret.url_credentials"
MIN_LENGTH = 16
# Bits per character. Random hex of 16+ characters averages above 3.2, other random
# alphabets above 3.7; English-like identifiers sit lower or are excluded as words.
HEX_ENTROPY = 3.0
OTHER_ENTROPY = 3.3

# Runs on the lower-cased text and starts at a credential word, so the regex engine can
# skip ahead quickly; the full key is recovered by walking back over identifier characters.
#   credential word …rest of key  [closing quote]  [": type" annotation]  operator  [quote]  value
_ASSIGNMENT = re.compile(
    r"(?:p(?:ass|wd|at)|secret|token|key|credential|auth|bearer)[a-z0-9_.-]{0,60}[\"']?[ \t]*"
    r"(?::[ \t]*[a-z_][\w\[\], |]{0,40}?[ \t]*(?==))?"
    r"(?:=>|:=|=|:)[ \t]*(?P<quote>[\"'`]?)"
    r"(?P<value>[^\s\"'`,;(){}\[\]<>$\\]{16,512})(?=[\"'`\s,;)]|$)"
)
# scheme://user:password@host. The password stops at what cannot be in userinfo unescaped;
# "$", "{", "<" and quotes stop it too, so templated URLs ("${DB_PASSWORD}") never match.
_URL_PASSWORD = re.compile(r"://[^\s:/@?#]*:(?P<value>[^\s/@?#$<>{}\[\]'\"`]{12,256})@")
_CREDENTIAL_WORDS = ("pass", "pwd", "pat", "secret", "token", "key", "credential", "auth", "bearer")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_END = re.compile(r"[A-Za-z0-9_.-]*")
_KEY_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pwd",
        "secret",
        "secrets",
        "token",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "bearer",
        "pat",
    }
)
_SECRET_KEY_PAIRS = frozenset(
    {
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("master", "key"),
        ("app", "key"),
        ("client", "key"),
    }
)
# A key ending in one of these describes a credential rather than holding one.
_DESCRIPTIVE_LAST_WORDS = frozenset(
    [
        "file",
        "path",
        "dir",
        "url",
        "uri",
        "endpoint",
        "host",
        "name",
        "names",
        "id",
        "ids",
        "type",
        "header",
        "field",
        "env",
        "var",
        "variable",
        "label",
        "prompt",
        "length",
        "len",
        "size",
        "count",
        "ttl",
        "expiry",
        "expires",
        "expiration",
        "timeout",
        "format",
        "pattern",
        "regex",
        "hash",
        "algorithm",
        "algo",
        "scope",
        "scopes",
        "kind",
        "mode",
        "policy",
        "ref",
        "location",
        "provider",
        "method",
        "prefix",
        "suffix",
        "version",
        "hint",
        "description",
        "help",
        "message",
        "msg",
        "text",
        "title",
        "placeholder",
        "required",
        "enabled",
        "min",
        "max",
        "limit",
        "store",
        "manager",
        "class",
        "factory",
        "generator",
        "validator",
        "reset",
        "confirm",
        "strength",
        "rules",
        "input",
        "form",
        "template",
        "command",
        "cmd",
        "source",
        "backend",
    ]
)
_CODE_REFERENCE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_VOWELS = frozenset("aeiouyAEIOUY")
_WORDS_ONLY = re.compile(r"[a-z]+(?:[-_. ][a-z]+)*")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _names_a_credential(key: str) -> bool:
    words = [word.lower() for word in _KEY_WORD.findall(key)]
    if not words or words[-1] in _DESCRIPTIVE_LAST_WORDS:
        return False
    if any(word in _SECRET_WORDS for word in words):
        return True
    return any(pair in _SECRET_KEY_PAIRS for pair in itertools.pairwise(words))


def _character_classes(value: str) -> int:
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


def _is_environment_name(value: str) -> bool:
    """``GITLAB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``: the name of a variable holding a secret."""
    return bool(_ENV_NAME.fullmatch(value)) and all(
        part.isdigit() or len(part) <= 4 or not _VOWELS.isdisjoint(part)
        for part in value.split("_")
    )


def _is_worded_identifier(value: str) -> bool:
    """``handlePasswordChange``, ``Argon2PasswordHasher``, ``accounts.CustomUserModel``.

    Every camel-case piece must be a pronounceable word (3+ letters with a vowel), a short
    acronym or a short number, with at least two words and acronyms and digits at most a
    quarter of the value. A random alphanumeric string passes this with odds of about
    1 in 400 at 16 characters and 1 in 1,200 at 20, and only when it is unquoted (see
    ``_is_literal_secret``); in exchange, code that assigns functions and classes to
    credential-named keys does not block.
    """
    if not _CODE_REFERENCE.fullmatch(value):
        return False
    words = other = 0
    for piece in _KEY_WORD.findall(value):
        if piece.isdigit() or piece.isupper():
            if len(piece) > (2 if piece.isdigit() else 5):
                return False
            other += len(piece)
        elif len(piece) >= 3 and not _VOWELS.isdisjoint(piece):
            words += 1
        else:
            return False
    return words >= 2 and other * 4 <= len(value)


def _is_literal_secret(value: str, quoted: bool) -> bool:
    if looks_like_placeholder(value) or "://" in value or value.startswith(("/", "./", "../", "~")):
        return False
    if _WORDS_ONLY.fullmatch(value) or _character_classes(value) < 2:
        return False
    if _is_environment_name(value):
        return False
    # Unquoted, a dotted or snake_case name or a worded identifier refers to code.
    if (
        not quoted
        and _CODE_REFERENCE.fullmatch(value)
        and ("." in value or "_" in value or _is_worded_identifier(value))
    ):
        return False
    # Quoted, only a dotted path of words is a name ("accounts.CustomUserModel"): a quoted
    # camel-case phrase may well be a password.
    if quoted and "." in value and _is_worded_identifier(value):
        return False
    threshold = HEX_ENTROPY if _HEX.fullmatch(value) else OTHER_ENTROPY
    return shannon_entropy(value) >= threshold


def _key_at(text: str, start: int) -> str:
    """The whole identifier around the credential word found at ``start``."""
    begin = start
    while begin > 0 and text[begin - 1] in _KEY_CHARS:
        begin -= 1
    end = _KEY_END.match(text, start)
    return text[begin : end.end() if end else start]


def assignment_hits(scan: ScanText) -> Iterator[SecretHit]:
    """Each high-entropy literal assigned to a credential-named key."""
    for match in find_matches(_ASSIGNMENT, scan.lowered, _CREDENTIAL_WORDS):
        key = _key_at(scan.text, match.start())
        start, end = match.span("value")
        value = scan.text[start:end]
        if _names_a_credential(key) and _is_literal_secret(value, bool(match.group("quote"))):
            reason = f"a high-entropy value assigned to {key!r} looks like a secret; {ROTATE}"
            yield SecretHit(RULE, start, end, reason)


def url_password_hits(scan: ScanText) -> Iterator[SecretHit]:
    """Each high-entropy password in the userinfo of a URL (``postgres://app:…@db``).

    Development defaults (``postgres:postgres@``), placeholders and word-only passwords pass,
    by the same test as a literal assigned to a credential-named key.
    """
    for match in find_matches(_URL_PASSWORD, scan.text, ("://",)):
        start, end = match.span("value")
        if _is_literal_secret(scan.text[start:end], quoted=True):
            reason = f"a password in the userinfo of a URL; {ROTATE}"
            yield SecretHit(URL_RULE, start, end, reason)
