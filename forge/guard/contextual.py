"""Secrets recognised by their structure around a separator rather than by a prefix:
Discord bot tokens, Telegram bot tokens, Azure storage keys, SAS URLs and Entra ID
client secrets. Each search starts at a literal, walks a bounded distance, and moves on,
so it is linear in the length of the text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Final

from forge.guard.scantext import LONG_RUN, TOKEN, ScanText, register_anchors
from forge.guard.secret_rules import ROTATE, SecretHit, looks_like_placeholder

# Discord: base64(user id) "." 6 chars (timestamp) "." 27-38 chars (HMAC). The user id
# is 17-20 decimal digits, so its base64 starts with M, N or O and decodes to digits.
# Searched from the 6-character middle part: a literal "." start lets the regex engine
# skip ahead at C speed, where a [MNO] start would try every M, N and O of the text.
_DISCORD_TAIL: Final = re.compile(r"\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}+(?![A-Za-z0-9_-])")
_DISCORD_ID: Final = re.compile(r"[MNO][A-Za-z0-9_-]{22,27}")
_TOKEN_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# A digit class start: the regex engine's own fast scan finds the candidates; a run of
# digits is tried at most 16 characters deep, and the token body is possessive.
_TELEGRAM: Final = re.compile(r"\d{5,16}+:AA[A-Za-z0-9_-]{33}+(?![A-Za-z0-9_-])")
_AZURE_ACCOUNT_KEY: Final = re.compile(
    r"(?:accountkey|sharedaccesskey|primarykey|secondarykey)[\"']?[ \t]{0,4}+[=:][ \t]{0,4}+"
    r"[\"']?(?P<secret>[a-z0-9+/]{40,86}+={0,2}+)"
)
_SAS_SIGNATURE: Final = re.compile(r"sig=(?P<secret>[A-Za-z0-9%+/=]{30,}+)")
_AZURE_ANCHORS: Final = register_anchors(
    ("accountkey", "sharedaccesskey", "primarykey", "secondarykey"), "lowered"
)
_SIG: Final = register_anchors(("sig=",), "raw")
_AAD: Final = register_anchors(("Q~",), "raw")
_TELEGRAM_ANCHOR: Final = register_anchors((":AA",), "raw")
# The bits of ``ScanText.found`` without one of which each search finds nothing. A
# Discord token ends in 27 or more base64 characters: a long run.
DISCORD_GATE: Final = LONG_RUN
TELEGRAM_GATE: Final = _TELEGRAM_ANCHOR.mask
AZURE_GATE: Final = _AZURE_ANCHORS.mask | _SIG.mask | _AAD.mask
_URL_STOP: Final = frozenset(" \t\r\n\"'<>()`")
_AAD_SECRET: Final = re.compile(r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}+")


def _discord_user_id(text: str, end: int) -> int | None:
    """Where the base64 user id that ends at ``end`` starts (at most 28 characters back)."""
    start = end
    while start > 0 and end - start < 28 and text[start - 1] in _TOKEN_CHARS:
        start -= 1
    if start > 0 and text[start - 1] in _TOKEN_CHARS:
        return None  # part of a longer run
    return start if _DISCORD_ID.fullmatch(text, start, end) else None


def _decodes_to_digits(user_id: str) -> bool:
    try:
        decoded = base64.urlsafe_b64decode(user_id + "=" * (-len(user_id) % 4))
    except (binascii.Error, ValueError):
        return False
    return decoded.isdigit() and 15 <= len(decoded) <= 21


def discord_hits(scan: ScanText) -> Iterator[SecretHit]:
    text = scan.text
    for match in _DISCORD_TAIL.finditer(text):
        start = _discord_user_id(text, match.start())
        if start is not None and _decodes_to_digits(text[start : match.start()]):
            yield SecretHit(
                "secret.discord_token",
                start,
                match.end(),
                f"a Discord bot token found; {ROTATE}",
            )


def telegram_hits(scan: ScanText) -> Iterator[SecretHit]:
    """``<bot id>:AA<33 characters>``: the bot id is 5-16 digits."""
    if not scan.has_any(_TELEGRAM_ANCHOR):
        return
    for match in _TELEGRAM.finditer(scan.text):
        start = match.start()
        # In a Bot API URL the id follows "/bot"; otherwise it must stand alone.
        after_bot = scan.text[max(0, start - 4) : start] == "/bot"
        if (after_bot or not scan.preceded_by(start, TOKEN)) and not looks_like_placeholder(
            match.group()
        ):
            yield SecretHit(
                "secret.telegram_token",
                match.start(),
                match.end(),
                f"a Telegram bot token found; {ROTATE}",
            )


def azure_hits(scan: ScanText) -> Iterator[SecretHit]:
    for match in scan.matches(_AZURE_ACCOUNT_KEY, _AZURE_ANCHORS, lowered=True):
        start, end = match.span("secret")
        if not looks_like_placeholder(scan.text[start:end]):
            reason = f"an Azure storage or service bus key found; {ROTATE}"
            yield SecretHit("secret.azure_key", start, end, reason)
    for match in scan.matches(_SAS_SIGNATURE, _SIG, lowered=False):
        if _in_sas_url(scan.lowered, match.start()):
            start, end = match.span("secret")
            reason = f"an Azure shared access signature (SAS) found; {ROTATE}"
            yield SecretHit("secret.azure_sas", start, end, reason)
    yield from _aad_hits(scan)


def _aad_hits(scan: ScanText) -> Iterator[SecretHit]:
    """Entra ID client secrets carry ``Q~`` after their first four characters."""
    if not scan.present(_AAD):
        return
    text = scan.text
    covered = -1
    position = text.find("Q~")
    while position != -1:
        start = position - 4
        if start >= covered and start >= 0:
            match = _AAD_SECRET.match(text, start)
            if match and not scan.preceded_by(start, TOKEN | {"~", "."}):
                covered = match.end()
                reason = f"a Microsoft Entra ID client secret found; {ROTATE}"
                yield SecretHit("secret.azure_key", start, match.end(), reason)
        position = text.find("Q~", position + 2)


def _in_sas_url(lowered: str, sig: int) -> bool:
    """True when the query string holding ``sig=`` also has a service version (``sv=``)."""
    limit = max(0, sig - 600)
    start = max(lowered.rfind(stop, limit, sig) for stop in _URL_STOP) + 1
    query = lowered[max(start, limit) : sig]
    return "sv=" in query and ("?" in query or "&" in query)
