"""Passwords in the userinfo of a URL: ``postgres://app:s3cr3t!@db``. Short ones count
too (a database URL's password is often under 16 characters), unless they are a
well-known development default, a placeholder or a template."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from forge.guard.assignments import MIN_LENGTH, TEMPLATE, is_literal_secret
from forge.guard.scantext import ScanText, register_anchors
from forge.guard.secret_rules import ROTATE, SecretHit, character_classes, looks_like_placeholder

URL_RULE: Final = "secret.url_credentials"
# scheme://user:password@host. The password stops at what cannot be in userinfo unescaped;
# "$", "{", "<" and quotes stop it too, so templated URLs ("${DB_PASSWORD}") never match.
_URL_PASSWORD: Final = re.compile(
    r"://[^\s:/@?#]{0,128}+:(?P<value>[^\s/@?#$<>{}\[\]'\"`]{4,256}+)@"
)
_URL: Final = register_anchors(("://",), "raw")
# The bit of ``ScanText.found`` without which the search finds nothing.
URL_GATE: Final = _URL.mask


_DEV_PASSWORDS: Final = (
    "postgres", "password", "passwd", "secret", "example", "changeme", "admin", "root",
    "test", "guest", "user", "pass", "mysql", "redis", "mongo", "dev", "local", "demo",
    "sample", "default",
)  # fmt: skip


def _is_url_password(value: str) -> bool:
    """Long passwords by the entropy test; short ones (a database URL's ``s3cr3t!``) when
    they are not a well-known development default and mix two kinds of characters."""
    if len(value) >= MIN_LENGTH:
        return is_literal_secret(value, quoted=True)
    lowered = value.lower()
    if len(value) < 6 or any(word in lowered for word in _DEV_PASSWORDS):
        return False
    if looks_like_placeholder(value) or TEMPLATE.search(value) or value.startswith("%"):
        return False
    return character_classes(value) >= 2


def url_password_hits(scan: ScanText) -> Iterator[SecretHit]:
    """Each password in the userinfo of a URL (``postgres://app:…@db``).

    Development defaults (``postgres:postgres@``), placeholders and templates pass.
    """
    for match in scan.matches(_URL_PASSWORD, _URL, lowered=False):
        start, end = match.span("value")
        if _is_url_password(scan.text[start:end]):
            reason = f"a password in the userinfo of a URL; {ROTATE}"
            yield SecretHit(URL_RULE, start, end, reason)
