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
from dataclasses import dataclass

from forge.guard.entropy import shannon_entropy

ROTATE = (
    "remove it, load credentials from the environment or a secret store, and rotate this one: "
    "it was exposed to whatever wrote the text"
)

_PLACEHOLDER_WORDS = (
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
_REPEATED_CHAR = re.compile(r"(.)\1{5}")


def looks_like_placeholder(value: str) -> bool:
    """True for documentation stand-ins rather than credentials."""
    lowered = value.lower()
    return any(word in lowered for word in _PLACEHOLDER_WORDS) or bool(_REPEATED_CHAR.search(value))


@dataclass(frozen=True)
class SecretHit:
    rule: str
    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class _FormatRule:
    """A secret with a recognisable shape; the ``secret`` group (or whole match) is the value."""

    rule: str
    label: str
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] = lambda value: not looks_like_placeholder(value)

    def hits(self, text: str) -> Iterator[SecretHit]:
        for match in self.pattern.finditer(text):
            group = "secret" if "secret" in self.pattern.groupindex else 0
            value = match.group(group)
            if self.accept(value):
                yield SecretHit(
                    self.rule, match.start(group), match.end(group), f"{self.label} found; {ROTATE}"
                )


_GITLAB_PREFIXES = (
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


FORMAT_RULES: tuple[_FormatRule, ...] = (
    _FormatRule(
        "secret.gitlab_token",
        "a GitLab token",
        re.compile(
            r"(?<![A-Za-z0-9_-])(?:[A-Za-z0-9]{1,20}-)?"
            rf"(?:{'|'.join(_GITLAB_PREFIXES)})-[A-Za-z0-9_-]{{20,}}(?:\.[A-Za-z0-9_-]+){{0,2}}"
            r"|(?<![A-Za-z0-9])GR1348941[A-Za-z0-9_-]{20,}"
        ),
    ),
    _FormatRule(
        "secret.github_token",
        "a GitHub token",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{60,255})"
            r"(?![A-Za-z0-9_])"
        ),
    ),
    _FormatRule(
        "secret.aws_access_key",
        "an AWS access key id",
        re.compile(
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])"
        ),
        _aws_key_id_is_real,
    ),
    _FormatRule(
        "secret.aws_secret_key",
        "an AWS secret access key",
        re.compile(
            r"(?i:aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)[\"']?\s*(?:=>|:=|=|:)\s*"
            r"[\"']?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        _aws_secret_is_real,
    ),
    _FormatRule(
        "secret.slack_token",
        "a Slack token",
        re.compile(
            r"(?<![A-Za-z0-9])(?:xox(?:[abposr]|e\.xox[bp])-[0-9A-Za-z-]{10,}"
            r"|xapp-\d-[A-Z0-9]{8,}-\d+-[a-z0-9]{20,})"
        ),
    ),
    _FormatRule(
        "secret.slack_webhook",
        "a Slack incoming-webhook URL",
        re.compile(
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,}"
        ),
    ),
    _FormatRule(
        "secret.google_api_key",
        "a Google API key",
        re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
    ),
    _FormatRule(
        "secret.stripe_key",
        "a Stripe secret key",
        re.compile(
            r"(?<![A-Za-z0-9])(?:(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,247}|whsec_[A-Za-z0-9]{32,})"
            r"(?![A-Za-z0-9])"
        ),
    ),
    _FormatRule(
        "secret.ai_api_key",
        "an AI provider API key",
        re.compile(
            r"(?<![A-Za-z0-9_-])(?:sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,}"
            r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}T3BlbkFJ[A-Za-z0-9_-]{16,})"
        ),
    ),
    _FormatRule(
        "secret.package_registry_token",
        "a package registry token",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:npm_[A-Za-z0-9]{36}|pypi-AgE[A-Za-z0-9_-]{50,})(?![A-Za-z0-9_])"
        ),
    ),
    _FormatRule(
        "secret.private_key",
        "a private key block",
        # A header alone is fine (parsers mention it); a header followed by key material is not.
        # "\\n" allows keys embedded in JSON strings.
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:(?:\\n|\s)+[A-Za-z-]+:[^\n\\]*)*(?:\\n|\s)+[A-Za-z0-9+/=]{32,}"
        ),
        lambda value: True,
    ),
    _FormatRule(
        "secret.jwt",
        "a JSON Web Token",
        re.compile(
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,}"
            r"(?![A-Za-z0-9_-])"
        ),
    ),
    _FormatRule(
        "secret.bearer_token",
        "a credential in an Authorization header",
        re.compile(
            r"(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?i:bearer|token|basic)\s+"
            r"(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)(?![A-Za-z0-9._~+/=-])"
        ),
        _bearer_is_real,
    ),
)
