"""Provider tokens that open with a fixed prefix (``dop_v1_``, ``hf_``, ``shpat_``…).

Each rule is data: the prefixes, the alphabet of the body, its length range and, where
the provider documents more structure, a regex the body must match in full. Matching is
``str.find`` for the prefix and one maximal run of the body's alphabet after it, so it
is linear whatever the input (a repeated prefix is consumed by the first run), and the
run being maximal keeps a token from matching inside a longer random string.

The provider list follows gitleaks' rule catalogue; ``docs/guard-coverage.md`` says
which providers are covered and by which rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from forge.guard.scantext import WORD, Anchors, ScanText, register_anchors
from forge.guard.secret_rules import ROTATE, SecretHit, looks_like_placeholder

_B64: Final = "A-Za-z0-9+/="
_URLSAFE: Final = r"A-Za-z0-9_\-"
_HEX: Final = "a-fA-F0-9"


@dataclass(frozen=True)
class Prefixed:
    """A token: ``prefix`` + a body of ``alphabet`` characters, ``lengths`` long.

    ``shape``: a regex the body must match in full (checked only once the length is in
    range, so its cost is bounded). ``not_after``: characters that may not precede the
    prefix. ``accept``: a last check on the whole token.
    """

    rule: str
    label: str
    prefixes: tuple[str, ...]
    alphabet: str
    lengths: tuple[int, int]
    shape: str | None = None
    not_after: frozenset[str] = WORD
    accept: Callable[[str], bool] = lambda token: not looks_like_placeholder(token)
    lead: int = 0  # letters and digits before the prefix that belong to the token
    _run: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _shape: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    prefix_set: Anchors = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix_set", register_anchors(self.prefixes, "token"))
        object.__setattr__(self, "_run", re.compile(f"[{self.alphabet}]*"))
        object.__setattr__(self, "_shape", re.compile(self.shape) if self.shape else None)

    def present(self, scan: ScanText) -> bool:
        """Whether any prefix occurs at all (most texts hold none)."""
        return scan.has_any(self.prefix_set)

    def hits(self, scan: ScanText) -> Iterator[SecretHit]:
        text = scan.text
        for prefix in self.prefixes:
            position = text.find(prefix)
            while position != -1:
                body_start = position + len(prefix)
                run = self._run.match(text, body_start)
                end = run.end() if run else body_start
                if "." in self.alphabet:
                    while end > body_start and text[end - 1] == ".":
                        end -= 1  # a token at the end of a sentence
                if self._is_token(scan, position, body_start, end):
                    start = position
                    while start > 0 and position - start < self.lead and text[start - 1].isalnum():
                        start -= 1
                    yield SecretHit(self.rule, start, end, f"{self.label} found; {ROTATE}")
                # Any later prefix inside this run would end in the same place.
                position = text.find(prefix, max(end - len(prefix) + 1, position + 1))

    def _is_token(self, scan: ScanText, start: int, body_start: int, end: int) -> bool:
        low, high = self.lengths
        if not low <= end - body_start <= high or scan.preceded_by(start, self.not_after):
            return False
        if self._shape is not None and not self._shape.fullmatch(scan.text, body_start, end):
            return False
        return self.accept(scan.text[start:end])


def _mixed_case(token: str) -> bool:
    return any(c.islower() for c in token) and any(c.isupper() for c in token)


def _random_letters(token: str) -> bool:
    return _mixed_case(token) and not looks_like_placeholder(token)


PREFIXED_RULES: Final[tuple[Prefixed, ...]] = (
    Prefixed(
        "secret.ai_api_key",
        "an Anthropic API, admin or OAuth token",
        ("sk-ant-api", "sk-ant-admin", "sk-ant-oat", "sk-ant-ort", "sk-ant-sid"),
        _URLSAFE,
        (40, 400),
        shape=r"\d{2}-[A-Za-z0-9_-]{36,}",
        not_after=WORD | {"-"},
    ),
    Prefixed(
        "secret.ai_api_key",
        "an OpenAI API key",
        ("sk-",),
        _URLSAFE,
        (40, 400),
        not_after=WORD | {"-"},
        accept=lambda token: "T3BlbkFJ" in token and not looks_like_placeholder(token),
    ),
    Prefixed(
        "secret.ai_api_key",
        "an AI provider API key",
        ("gsk_", "pplx-", "xai-"),
        "A-Za-z0-9",
        (40, 100),
        accept=_random_letters,
    ),
    Prefixed(
        "secret.huggingface_token",
        "a Hugging Face token",
        ("hf_", "api_org_"),
        "A-Za-z0-9",
        (30, 40),
        accept=_random_letters,
    ),
    Prefixed(
        "secret.digitalocean_token",
        "a DigitalOcean token",
        ("dop_v1_", "doo_v1_", "dor_v1_"),
        _HEX,
        (64, 64),
    ),
    Prefixed(
        "secret.vault_token",
        "a HashiCorp Vault token",
        ("hvs.", "hvb.", "hvr."),
        _URLSAFE,
        (90, 400),
    ),
    Prefixed(
        "secret.vault_token",
        "a Terraform Cloud / HCP token",
        (".atlasv1.",),
        _URLSAFE + "=",
        (60, 70),
        not_after=frozenset(),
        lead=14,
    ),
    Prefixed(
        "secret.shopify_token",
        "a Shopify access token or shared secret",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        _HEX,
        (32, 32),
    ),
    Prefixed(
        "secret.databricks_token",
        "a Databricks token",
        ("dapi", "dkea", "dosa"),
        _HEX + r"\-",
        (32, 34),
        shape=r"[a-f0-9]{32}(?:-\d)?",
    ),
    Prefixed(
        "secret.sendgrid_key",
        "a SendGrid API key",
        ("SG.",),
        _URLSAFE + ".",
        (60, 80),
        shape=r"[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{40,50}",
    ),
    Prefixed(
        "secret.twilio_key",
        "a Twilio API key",
        ("SK",),
        "A-Za-z0-9",
        (32, 32),
        shape=r"[a-f0-9]{32}",
    ),
    Prefixed(
        "secret.package_registry_token",
        "a package registry token",
        ("rubygems_",),
        "a-z0-9",
        (48, 48),
        shape=r"[a-f0-9]{48}",
    ),
    Prefixed(
        "secret.package_registry_token",
        "a NuGet API key",
        ("oy2",),
        "a-z0-9",
        (43, 43),
        accept=lambda token: sum(c.isdigit() for c in token) >= 4,
    ),
    Prefixed(
        "secret.slack_token",
        "a Microsoft Teams incoming-webhook URL",
        (".webhook.office.com/webhookb2/",),
        _URLSAFE + "@/",
        (100, 300),
        not_after=frozenset(),
    ),
    Prefixed(
        "secret.discord_webhook",
        "a Discord webhook URL",
        ("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"),
        _URLSAFE + "/",
        (70, 100),
        shape=r"\d{17,20}/[A-Za-z0-9_-]{60,70}",
        not_after=frozenset(),
    ),
    Prefixed(
        "secret.service_token",
        "a service API token",
        (
            "HRKU-AA",  # Heroku
            "lin_api_",  # Linear
            "ntn_",  # Notion
            "sntryu_",  # Sentry user token
            "glsa_",  # Grafana service account
            "glc_",  # Grafana Cloud
            "PMAK-",  # Postman
            "pnu_",  # Prefect
            "dp.pt.",  # Doppler
            "dp.st.",
            "pscale_tkn_",  # PlanetScale
            "pscale_pw_",
            "pscale_oauth_",
            "NRAK-",  # New Relic
            "dt0c01.",  # Dynatrace
            "EZAK",  # EasyPost
            "fo1_",  # Fly.io
            "fm2_",
            "fio-u-",  # Frame.io
            "rdme_",  # ReadMe
            "tk-us-",  # Scalingo
            "CLOJARS_",  # Clojars
            "duffel_live_",  # Duffel
            "duffel_test_",
            "shippo_live_",  # Shippo
            "shippo_test_",
            "AKCp",  # Artifactory
            "sm_pat_",  # SettleMint
            "sm_aat_",
            "sm_sat_",
            "ATATT3",  # Atlassian
            "ATBB",  # Bitbucket app password
            "sq0atp-",  # Square
            "sq0csp-",
            "EAAA",
            "GOCSPX-",  # Google OAuth client secret
            "sha256~",  # OpenShift
            "LTAI",  # Alibaba
            "pul-",  # Pulumi
            "ops_eyJ",  # 1Password service account
            "AGE-SECRET-KEY-1",  # age
            "v1.0-",  # Cloudflare origin CA
            "sntrys_",  # Sentry org token
            "FLWSECK-",  # Flutterwave
            "FLWSECK_TEST-",
        ),
        _URLSAFE + ".+/=",
        (16, 1200),
        accept=lambda token: _service_token(token),
    ),
)

# Body checks for the service tokens above that need more than "long and random".
_SERVICE_SHAPES: Final[dict[str, re.Pattern[str]]] = {
    "pul-": re.compile(r"pul-[a-f0-9]{40}"),
    "LTAI": re.compile(r"LTAI[A-Za-z0-9]{20}"),
    "EAAA": re.compile(r"EAAA[A-Za-z0-9_-]{56,}"),
    "AKCp": re.compile(r"AKCp[A-Za-z0-9]{60,80}"),
    "ATBB": re.compile(r"ATBB[A-Za-z0-9]{28,40}"),
    "v1.0-": re.compile(r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
    "glc_": re.compile(r"glc_[A-Za-z0-9+/]{32,400}={0,3}"),
    "fm2_": re.compile(r"fm2_[A-Za-z0-9+/]{100,}={0,3}"),
}


_SEPARATORS: Final = re.compile(r"[_.~-]")


def _service_token(token: str) -> bool:
    for prefix, shape in _SERVICE_SHAPES.items():
        if token.startswith(prefix):
            return bool(shape.fullmatch(token))
    body = max(_SEPARATORS.split(token), key=len)  # the random part, without the prefix
    digits = sum(c.isdigit() for c in body)
    return (
        len(token) >= 24
        and digits >= 2
        and (_mixed_case(body) or digits * 3 >= len(body) // 2)
        and not looks_like_placeholder(token)
    )
