"""Every provider ``docs/guard-coverage.md`` lists as covered is refused by the rule it
names, with a token of the provider's documented shape made up at run time."""

from __future__ import annotations

import pytest

from forge.guard import Guard
from tests.support.guard import ALNUM, URLSAFE, fake_token

HEX = "0123456789abcdef"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _t(length: int, alphabet: str = ALNUM, prefix: str = "") -> str:
    return fake_token(length, alphabet, prefix=prefix, seed=prefix)


PROVIDER_TOKENS = [
    ("1password", "secret.service_token", _t(260, ALNUM, "ops_eyJ")),
    ("age", "secret.service_token", _t(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", "AGE-SECRET-KEY-1")),
    ("alibaba", "secret.service_token", _t(20, ALNUM, "LTAI")),
    ("anthropic", "secret.ai_api_key", _t(95, URLSAFE, "sk-ant-api03-")),
    ("anthropic oauth", "secret.ai_api_key", _t(95, URLSAFE, "sk-ant-oat01-")),
    ("artifactory", "secret.service_token", _t(69, ALNUM, "AKCp")),
    ("atlassian", "secret.service_token", _t(180, URLSAFE, "ATATT3")),
    ("bitbucket", "secret.service_token", _t(32, ALNUM, "ATBB")),
    ("clojars", "secret.service_token", _t(60, HEX + "ABCDEF", "CLOJARS_")),
    ("cloudflare origin ca", "secret.service_token", f"v1.0-{_t(24, HEX)}-{_t(146, HEX)}"),
    ("databricks", "secret.databricks_token", _t(32, HEX, "dapi")),
    ("digitalocean", "secret.digitalocean_token", _t(64, HEX, "dop_v1_")),
    ("doppler", "secret.service_token", _t(43, ALNUM, "dp.pt.")),
    ("duffel", "secret.service_token", _t(43, URLSAFE, "duffel_live_")),
    ("dynatrace", "secret.service_token", f"dt0c01.{_t(24, UPPER)}.{_t(64, UPPER)}"),
    ("easypost", "secret.service_token", _t(54, ALNUM, "EZAK")),
    ("flutterwave", "secret.service_token", _t(32, HEX, "FLWSECK_TEST-") + "-X"),
    ("flyio", "secret.service_token", _t(43, URLSAFE, "fo1_")),
    ("frameio", "secret.service_token", _t(64, URLSAFE, "fio-u-")),
    ("gcp oauth", "secret.service_token", _t(28, URLSAFE, "GOCSPX-")),
    ("grafana", "secret.service_token", _t(32, ALNUM, "glsa_") + "_" + _t(8, HEX)),
    ("heroku", "secret.service_token", _t(58, URLSAFE, "HRKU-AA")),
    ("huggingface", "secret.huggingface_token", _t(34, ALNUM, "hf_")),
    ("linear", "secret.service_token", _t(40, ALNUM, "lin_api_")),
    ("newrelic", "secret.service_token", _t(27, UPPER, "NRAK-")),
    ("notion", "secret.service_token", "ntn_" + _t(11, "0123456789") + _t(35, ALNUM)),
    (
        "nuget",
        "secret.package_registry_token",
        _t(43, "abcdefghijklmnopqrstuvwxyz0123456789", "oy2"),
    ),
    ("openshift", "secret.service_token", _t(43, URLSAFE, "sha256~")),
    ("perplexity", "secret.ai_api_key", _t(48, ALNUM, "pplx-")),
    ("planetscale", "secret.service_token", _t(43, URLSAFE, "pscale_tkn_")),
    ("postman", "secret.service_token", f"PMAK-{_t(24, HEX)}-{_t(34, HEX)}"),
    ("prefect", "secret.service_token", _t(36, ALNUM, "pnu_")),
    ("pulumi", "secret.service_token", _t(40, HEX, "pul-")),
    ("readme", "secret.service_token", _t(70, "abcdefghijklmnopqrstuvwxyz0123456789", "rdme_")),
    ("rubygems", "secret.package_registry_token", _t(48, HEX, "rubygems_")),
    ("scalingo", "secret.service_token", _t(48, URLSAFE, "tk-us-")),
    ("sendgrid", "secret.sendgrid_key", f"SG.{_t(22, URLSAFE)}.{_t(43, URLSAFE)}"),
    ("sentry", "secret.service_token", _t(64, HEX, "sntryu_")),
    ("settlemint", "secret.service_token", _t(16, ALNUM, "sm_pat_") + _t(8, ALNUM)),
    ("shippo", "secret.service_token", _t(40, HEX, "shippo_live_")),
    ("shopify", "secret.shopify_token", _t(32, HEX, "shpat_")),
    ("square", "secret.service_token", _t(60, URLSAFE, "EAAA")),
    ("telegram", "secret.telegram_token", "123456789:AA" + _t(33, URLSAFE)),
    ("twilio", "secret.twilio_key", _t(32, HEX, "SK")),
    ("vault", "secret.vault_token", _t(95, URLSAFE, "hvs.")),
    ("terraform cloud", "secret.vault_token", f"{_t(14)}.atlasv1.{_t(67, URLSAFE)}"),
]


@pytest.mark.parametrize(
    ("provider", "rule", "token"), PROVIDER_TOKENS, ids=[p for p, _, _ in PROVIDER_TOKENS]
)
def test_provider_token_is_refused_by_its_rule(provider: str, rule: str, token: str) -> None:
    findings = [f for f in Guard().scan(f"config: {token} (from the vault)") if f.blocking]
    assert [f.rule for f in findings] == [rule], provider
    assert findings[0].end - findings[0].start >= len(token) - 2


def test_documented_example_keys_pass() -> None:
    text = (
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    )
    assert Guard().screen_text(text, where="note.body") == text
