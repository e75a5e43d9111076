"""Generic secret assignments: ``password = "..."``, ``api_key: ...``, ``SECRET_KEY=...``.

A value is reported only when the key names a credential, the value is a literal (not an
expression, variable, path, URL or placeholder) of at least 16 characters, and it looks
random (Shannon entropy over a threshold). The rules lean towards passing real code: a false
positive blocks real work, and ``secret_rules`` catches the formats with a known shape.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Final

from forge.guard.entropy import shannon_entropy
from forge.guard.scantext import ScanText, matches_at, register_anchors
from forge.guard.secret_rules import (
    ROTATE,
    SecretHit,
    character_classes,
    looks_like_placeholder,
)

RULE: Final = "secret.generic_assignment"
MIN_LENGTH: Final = 16
# Bits per character: random hex of 16+ characters averages above 3.2, other alphabets 3.7.
HEX_ENTROPY: Final = 3.0
OTHER_ENTROPY: Final = 3.3

# Runs on the lower-cased text and starts at a credential word, so the regex engine can
# skip ahead quickly; the full key is recovered by walking back over identifier characters.
#   credential word …rest of key  [closing quote]  [": type" annotation]  operator  [quote]  value
_ASSIGNMENT_PREFIX: Final = (
    r"(?:p(?:ass|wd|at|w)|secret|token|key|credential|auth|bearer)[a-z0-9_.-]{0,60}+[\"']?"
    r"[ \t]{0,8}+(?::[ \t]{0,4}+[a-z_][\w\[\], |]{0,40}?[ \t]{0,4}+(?==))?"
    r"(?:=>|:=|=|:)[ \t]{0,8}+"
)
_UNQUOTED_VALUE: Final = r"(?P<value>[^\s\"'`,;(){}\[\]<>$\\]{16,}+)"
_ASSIGNMENT: Final = re.compile(
    _ASSIGNMENT_PREFIX
    + r"(?:(?P<quote>[\"'`])(?P<quoted>[^\"'`\s]{16,}+)(?P=quote)|"
    + _UNQUOTED_VALUE
    + r"(?=[\"'`\s,;)]|$))"
)
# The unquoted value run is maximal and every character of a key or operator belongs to
# it: when an attempt fails at the end of that run, every credential word inside the run
# would fail there too (see ``find_matches``).
_ASSIGNMENT_RUN: Final = re.compile(_ASSIGNMENT_PREFIX + _UNQUOTED_VALUE)
MAX_VALUE: Final = 512
# What every match has at its end, whatever its key: the operator's last character, the
# same spaces, an optional quote and 16 characters that both value forms accept. Most
# texts mention keys and tokens; far fewer assign anything long: a credential word with
# no such operator close after it is not tried.
# Only the operator is consumed (the rest is a look-ahead): a value may itself hold the
# operator of the real assignment (``env: "API_KEY=…"``), which must be tried too.
_VALUE_AFTER_OPERATOR: Final = re.compile(r"[=:>](?=[ \t]{0,8}+[\"'`]?[^\s\"'`]{16})")
# From the credential word to the operator's last character a match spans at most: the
# rest of the key (60), a quote, spaces (8), a type annotation (50) and the operator (2).
_KEY_TO_OPERATOR: Final = 140
# An operator and its look-ahead: the operator, spaces (8), a quote and 16 characters.
_OPERATOR_LOOKAHEAD: Final = 26
_CREDENTIAL_WORDS: Final = (
    "pass", "pwd", "pat", "pw", "secret", "token", "key", "credential", "auth", "bearer",
)  # fmt: skip
_CREDENTIAL: Final = register_anchors(_CREDENTIAL_WORDS, "lowered")
# The bits of ``ScanText.found`` without one of which each search finds nothing.
GATE: Final = _CREDENTIAL.mask
# Identifier characters as "k", anything else as a space (see ``_key_span``).
_KEY_MAP: Final = bytes(
    ord("k") if chr(byte).isascii() and (chr(byte).isalnum() or chr(byte) in "_.-") else ord(" ")
    for byte in range(256)
)
_MAX_KEY_BEFORE: Final = 200
_KEY_END: Final = re.compile(r"[A-Za-z0-9_.-]*")
_KEY_WORD: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_SECRET_WORDS: Final = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pwd",
        "pw",
        "pword",
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
_SECRET_KEY_PAIRS: Final = frozenset(
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
_DESCRIPTIVE_LAST_WORDS: Final = frozenset(
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
_NON_SECRET_KEYS: Final = frozenset(
    {
        "cache", "sort", "primary", "foreign", "partition", "lookup", "idempotency", "dedup",
        "dedupe", "map", "dict", "hash", "row", "column", "object", "bucket", "public", "pub",
        "group", "routing", "shard", "index", "unique", "composite", "natural", "surrogate",
        "translation", "i18n", "message", "locale", "redis", "memcache", "react", "list",
        "item", "field", "config", "setting", "settings", "registry", "hot", "short", "sub",
        "keyboard", "legend", "label", "storage", "s3", "result", "query",
    }
)  # fmt: skip
TEMPLATE: Final = re.compile(r"\$\{|\{\{|%\(|%s|#\{|<%|\{[A-Za-z_][\w.]*\}")
_PATH: Final = re.compile(r"(?:/[A-Za-z0-9._@~-]+)+/?")
_SNAKE_PART: Final = re.compile(r"[a-z]+\d{0,2}|\d{1,4}")
_SNAKE_SPLIT: Final = re.compile(r"[_.-]")
_CODE_SPLIT: Final = re.compile(r"::|[/.]")
_CODE_REFERENCE: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_ENV_NAME: Final = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_VOWELS: Final = frozenset("aeiouyAEIOUY")
_WORDS_ONLY: Final = re.compile(r"[a-z]+(?:[-_. ][a-z]+)*")
_HEX: Final = re.compile(r"[0-9a-fA-F]+")


def _names_a_credential(key: str) -> bool:
    pieces = _KEY_WORD.findall(key)
    if not pieces:
        return False
    # The words lower-cased and the set tests in C: no piece holds a space.
    words = " ".join(pieces).lower().split(" ")
    if words[-1] in _DESCRIPTIVE_LAST_WORDS:
        return False
    if not _SECRET_WORDS.isdisjoint(words):
        return True
    if not _SECRET_KEY_PAIRS.isdisjoint(itertools.pairwise(words)):
        return True
    # STRIPE_KEY, deployKey: a name ending in "key" holds one, unless it names a kind of
    # key that is not a secret (cache_key, primary_key, public_key).
    return len(words) >= 2 and words[-1] == "key" and words[-2] not in _NON_SECRET_KEYS


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
    ``is_literal_secret``); in exchange, code that assigns functions and classes to
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


def _is_path(value: str) -> bool:
    """``/run/secrets/db``: a file, not a secret. A base64 secret may start with "/" too,
    but then it has "+" or a segment mixing upper case, lower case and digits."""
    if value.startswith(("./", "../", "~")):
        return True
    if ":/" in value:  # "name:/path" (systemd LoadCredential, docker volumes)
        value = value.split(":", 1)[1]
    return bool(_PATH.fullmatch(value)) and not any(
        character_classes(segment) >= 3 for segment in value.split("/")
    )


def _is_worded_snake(value: str) -> bool:
    """``argon2_id_default``, ``shop_prod_v3``: lower-case words (a short number allowed)."""
    return all(
        _SNAKE_PART.fullmatch(part) and (len(part) <= 4 or not _VOWELS.isdisjoint(part))
        for part in _SNAKE_SPLIT.split(value)
    )


def _is_code_path(value: str) -> bool:
    """``TestParseAuthHeader/bearer``, ``auth::tests::rejects``, ``process.env.SECRET!``:
    pieces of code, each a worded identifier or a lower-case word."""
    pieces = [piece for piece in _CODE_SPLIT.split(value.rstrip("!")) if piece]
    return bool(pieces) and all(
        _WORDS_ONLY.fullmatch(piece)
        or _is_worded_identifier(piece)
        or _is_environment_name(piece)
        or (_CODE_REFERENCE.fullmatch(piece) is not None and _is_worded_snake(piece))
        for piece in pieces
    )


def is_literal_secret(value: str, quoted: bool, env_line: bool = False) -> bool:
    if looks_like_placeholder(value) or "://" in value or _is_path(value):
        return False
    if value.startswith(":"):
        return False  # "auth::tests": a Rust or C++ path, not "auth: <value>"
    if not quoted and _is_code_path(value):
        return False
    if env_line and _is_worded_snake(value):
        return False
    if TEMPLATE.search(value):
        return False
    if _WORDS_ONLY.fullmatch(value) or character_classes(value) < 2:
        return False
    if _is_environment_name(value):
        return False
    # Unquoted, a dotted or snake_case name or a worded identifier refers to code; but
    # the value of a ``.env`` line (``HF_TOKEN=hf_…``, ``KEY=rk_prod_…``) is a literal.
    if (
        not quoted
        and _CODE_REFERENCE.fullmatch(value)
        and ("." in value or ("_" in value and not env_line) or _is_worded_identifier(value))
    ):
        return False
    # Quoted, only a dotted path of words is a name ("accounts.CustomUserModel"): a quoted
    # camel-case phrase may well be a password.
    if quoted and "." in value and _is_worded_identifier(value):
        return False
    threshold = HEX_ENTROPY if _HEX.fullmatch(value) else OTHER_ENTROPY
    return shannon_entropy(value) >= threshold


def _key_span(text: str, start: int) -> tuple[int, int]:
    """Where the whole identifier around the credential word found at ``start`` lies."""
    before = text[max(0, start - _MAX_KEY_BEFORE) : start]
    # The last non-identifier character before the word, found at C speed.
    mapped = before.encode("ascii", "replace").translate(_KEY_MAP)
    begin = start - len(before) + mapped.rfind(b" ") + 1
    end = _KEY_END.match(text, start)
    return begin, end.end() if end else start


def _is_env_line(text: str, key: tuple[int, int], value_start: int) -> bool:
    """``NAME=value`` alone on its line (``export`` allowed): a ``.env`` file."""
    name = text[key[0] : key[1]]
    if not name.isupper() or text[key[1] : value_start] != "=":
        return False
    line_start = text.rfind("\n", max(0, key[0] - 80), key[0]) + 1
    return text[line_start : key[0]].strip() in ("", "export")


def _assignable(scan: ScanText, positions: list[int], first: int) -> list[int]:
    """Those of ``positions`` (credential words, sorted) that an operator followed by a
    long value comes close enough after: a necessary condition of a match starting
    there, far cheaper than trying the match. ``first``: the first such operator of the
    text.

    A search reads at most the reach of one position; what it ruled out is not read
    again for the next position, so the cost stays linear in the text.
    """
    text = scan.text
    kept: list[int] = []
    operator = first  # an operator with a value found by the last search, or -1
    clear_to = first  # no operator with a value lies before here (from the last position on)
    for position in positions:
        reach = position + _KEY_TO_OPERATOR - 1  # the last place its operator can be
        if not position <= operator <= reach:
            if reach < clear_to:
                continue  # no operator between ``position`` and ``reach``: nothing to read
            # Searching a text cut at ``reach + _OPERATOR_LOOKAHEAD`` can only miss
            # operators whose look-ahead runs past the cut: those lie beyond ``reach``.
            found = _VALUE_AFTER_OPERATOR.search(
                text, max(position, clear_to), reach + _OPERATOR_LOOKAHEAD
            )
            operator = found.start() if found else -1
            clear_to = reach + 1 if operator == -1 else min(operator, reach + 1)
        if position <= operator <= reach:
            kept.append(position)
    return kept


def assignment_hits(scan: ScanText) -> Iterator[SecretHit]:
    """Each high-entropy literal assigned to a credential-named key."""
    text = scan.text
    positions = scan.positions(_CREDENTIAL)
    if not positions:
        return
    # Most texts that name a credential assign nothing long after one: one search, from
    # the first credential word to the reach of the last, decides (cut like the windows
    # in ``_assignable``, it can only miss operators beyond that reach).
    last = positions[-1] + _KEY_TO_OPERATOR - 1 + _OPERATOR_LOOKAHEAD
    first = _VALUE_AFTER_OPERATOR.search(text, positions[0], last)
    if first is None:
        return
    positions = _assignable(scan, positions, first.start())
    for match in matches_at(_ASSIGNMENT, scan.lowered, positions, _ASSIGNMENT_RUN):
        span = _key_span(text, match.start())
        key = text[span[0] : span[1]]
        quoted = match.group("quoted") is not None
        start, end = match.span("quoted" if quoted else "value")
        if end - start > MAX_VALUE or not _names_a_credential(key):
            continue
        env_line = not quoted and _is_env_line(text, span, start)
        if is_literal_secret(text[start:end], quoted, env_line):
            reason = f"a high-entropy value assigned to {key!r} looks like a secret; {ROTATE}"
            yield SecretHit(RULE, start, end, reason)
