"""Known secret formats and high-entropy secret assignments.

Every pattern is bounded on both sides so it never fires inside a longer run of the
same alphabet (base64 images, integrity hashes, minified code).

Deliberate exceptions, each documented where it is decided:

- AWS's documented example credentials (key ids ending in ``EXAMPLE``, the secret
  ending in ``EXAMPLEKEY``) pass: they appear in countless READMEs and test fixtures,
  and a real, randomly generated key id ends in ``EXAMPLE`` with odds of 1 in 32**7.
- Obvious placeholders (``xxxx``, ``your-token``, ``<token>``, ``changeme``, runs of one
  character) pass: they are documentation, not credentials.
- Stripe *publishable* keys (``pk_live_``) pass: they are meant to be public.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from forge.guard.entropy import shannon_entropy
from forge.guard.scantext import (
    ALNUM,
    TOKEN,
    WORD,
    Anchors,
    ScanText,
    register_anchors,
    register_words,
)

ROTATE: Final = (
    "remove it, load credentials from the environment or a secret store, and rotate this one: "
    "it was exposed to whatever wrote the text"
)

_PLACEHOLDER_WORDS: Final = (
    "xxxx",
    "example",
    "your",
    "placeholder",
    "redacted",
    "changeme",
    "change_me",
    "dummy",
    "replace",
    "insert",
    "****",
    "...",
    "…",
)
_PLACEHOLDER: Final = re.compile("|".join(map(re.escape, _PLACEHOLDER_WORDS)))
_REPEATED_CHAR: Final = re.compile(r"(.)\1{5}")


def looks_like_placeholder(value: str) -> bool:
    """True for documentation stand-ins rather than credentials."""
    return bool(_PLACEHOLDER.search(value.lower()) or _REPEATED_CHAR.search(value))


# Each ASCII character as its class: lower case, upper case, digit or anything else.
_CLASS_OF: Final = bytes(
    ord("a") if 97 <= byte <= 122 else ord("A") if 65 <= byte <= 90 else ord("0")
    if 48 <= byte <= 57 else ord(".")
    for byte in range(256)
)  # fmt: skip


def character_classes(value: str) -> int:
    """How many of lower case, upper case, digits and other characters ``value`` mixes."""
    if value.isascii():  # the usual case, in a few C calls
        return len(set(value.encode("ascii").translate(_CLASS_OF)))
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


@dataclass(frozen=True)
class SecretHit:
    rule: str
    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class _FormatRule:
    """A secret with a recognisable shape; the ``secret`` group (or whole match) is the value.

    ``not_after``: characters that must not precede the match (a left word boundary).
    ``lowered``: the pattern is lower-case and runs on the lower-cased text.
    ``anchors``: the literal strings every match starts with (in the text the pattern runs on).
    ``requires``: groups of lower-case literals of which every match contains one per
    group, for the prefilter (see ``ScanText.has_each``).
    """

    rule: str
    label: str
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] = lambda value: not looks_like_placeholder(value)
    not_after: frozenset[str] = frozenset()
    lowered: bool = False
    anchors: tuple[str, ...] = ()
    skip_run: re.Pattern[str] | None = None
    requires: tuple[tuple[str, ...], ...] = ()
    anchor_set: Anchors = field(init=False, repr=False, compare=False)
    _required: tuple[Anchors, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "anchor_set",
            register_anchors(self.anchors, "lowered" if self.lowered else "token"),
        )
        object.__setattr__(self, "_required", register_words(*self.requires))

    def present(self, scan: ScanText) -> bool:
        """Whether the literals a match needs occur at all (most texts hold none)."""
        return scan.has_any(self.anchor_set) and scan.has_each(self._required)

    def hits(self, scan: ScanText) -> Iterator[SecretHit]:
        group = "secret" if "secret" in self.pattern.groupindex else 0
        matches = scan.matches(
            self.pattern, self.anchor_set, lowered=self.lowered, skip_run=self.skip_run
        )
        for match in matches:
            if scan.preceded_by(match.start(), self.not_after):
                continue
            start, end = match.span(group)
            if self.accept(scan.text[start:end]):
                yield SecretHit(self.rule, start, end, f"{self.label} found; {ROTATE}")


_GITLAB_PREFIXES: Final = (
    "glpat",  # personal, project and group access tokens
    "gloas",  # OAuth application secrets
    "gldt",  # deploy tokens
    "glrt",  # runner authentication tokens
    "glrtr",  # runner tokens created through the legacy registration flow
    "glcbt",  # CI/CD job tokens
    "glptt",  # pipeline trigger tokens
    "glft",  # feed tokens
    "glimt",  # incoming email tokens
    "glagent",  # agent for Kubernetes tokens
    "glsoat",  # SCIM tokens
    "glffct",  # feature flags client tokens
    "glwt",  # workspace tokens
)


def _aws_key_id_is_real(value: str) -> bool:
    return not value.endswith("EXAMPLE") and not looks_like_placeholder(value)


def _aws_secret_is_real(value: str) -> bool:
    return "EXAMPLEKEY" not in value and not looks_like_placeholder(value)


def _bearer_is_real(value: str) -> bool:
    return not looks_like_placeholder(value) and shannon_entropy(value) >= 3.5


FORMAT_RULES: Final[tuple[_FormatRule, ...]] = (
    _FormatRule(
        "secret.gitlab_token",
        "a GitLab token",
        # A "-" may precede: instance-prefixed tokens look like "acme-glpat-…".
        re.compile(
            rf"(?:{'|'.join(_GITLAB_PREFIXES)})-[A-Za-z0-9_-]{{20,}}+(?:\.[A-Za-z0-9_-]++){{0,2}}"
            r"|GR1348941[A-Za-z0-9_-]{20,}+"
        ),
        not_after=WORD,
        anchors=(*(f"{prefix}-" for prefix in _GITLAB_PREFIXES), "GR1348941"),
    ),
    _FormatRule(
        "secret.github_token",
        "a GitHub token",
        re.compile(
            r"(?:gh[pousr]_[A-Za-z0-9]{36,251}+|github_pat_[A-Za-z0-9_]{60,255}+)(?![A-Za-z0-9_])"
        ),
        not_after=WORD,
        anchors=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _FormatRule(
        "secret.aws_access_key",
        "an AWS access key id",
        re.compile(r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _aws_key_id_is_real,
        not_after=ALNUM,
        anchors=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    _FormatRule(
        "secret.aws_secret_key",
        "an AWS secret access key",
        re.compile(
            r"(?:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)[\"']?"
            r"(?:[ \t]{0,8}+(?:=>|:=|=|:)|(?=[ \t]))[ \t]{0,8}+[\"']?(?P<secret>[a-z0-9/+]{40}+)(?![a-z0-9/+=])"
        ),
        _aws_secret_is_real,
        lowered=True,
        anchors=("aws", "secret"),
        requires=(("secret",), ("key",), ("aws", "access")),
    ),
    _FormatRule(
        "secret.slack_token",
        "a Slack token",
        re.compile(
            r"xox(?:[abposr]|e\.xox[bp])-[0-9A-Za-z-]{10,}+|xapp-\d-[A-Z0-9]{8,}+-\d++-[a-z0-9]{20,}+"
        ),
        not_after=ALNUM,
        anchors=("xox", "xapp-"),
    ),
    _FormatRule(
        "secret.slack_webhook",
        "a Slack incoming-webhook URL",
        re.compile(
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}+"
        ),
        anchors=("https://hooks.slack.com/",),
    ),
    _FormatRule(
        "secret.google_api_key",
        "a Google API key",
        re.compile(r"AIza[0-9A-Za-z_-]{35}+(?![A-Za-z0-9_-])"),
        not_after=TOKEN,
        anchors=("AIza",),
    ),
    _FormatRule(
        "secret.stripe_key",
        "a Stripe secret key",
        re.compile(
            r"(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,247}+|whsec_[A-Za-z0-9]{32,}+)(?![A-Za-z0-9])"
        ),
        not_after=ALNUM,
        anchors=("sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"),
    ),
    _FormatRule(
        "secret.package_registry_token",
        "a package registry token",
        re.compile(r"(?:npm_[A-Za-z0-9]{36}|pypi-AgE[A-Za-z0-9_-]{50,}+)(?![A-Za-z0-9_])"),
        not_after=WORD,
        anchors=("npm_", "pypi-"),
    ),
    _FormatRule(
        "secret.jwt",
        "a JSON Web Token",
        re.compile(r"eyJ[A-Za-z0-9_-]{10,}+\.eyJ[A-Za-z0-9_-]{10,}+\.[A-Za-z0-9_-]{16,}+"),
        not_after=TOKEN,
        anchors=("eyJ",),
        skip_run=re.compile(r"[A-Za-z0-9_-]*"),
    ),
    _FormatRule(
        "secret.bearer_token",
        "a credential in an Authorization header",
        re.compile(
            r"authorization[\"']?[ \t]{0,8}+[:=][ \t]{0,8}+[\"']?(?:bearer|token|basic)[ \t]{1,8}+"
            r"(?P<secret>[a-z0-9._~+/-]{16,}+=*+)(?![a-z0-9._~+/=-])"
        ),
        _bearer_is_real,
        lowered=True,
        anchors=("authorization",),
    ),
)
