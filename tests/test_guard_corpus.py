"""The guard corpus: every positive sample is refused by the rule it names, every negative
sample passes, and the corpus keeps the size and the kinds of samples the issue asks for."""

from __future__ import annotations

import pytest

from forge.guard import GuardBlocked
from tests.support.guard import Sample, load_samples, parse_sample, screen_sample

POSITIVES = load_samples("positive")
NEGATIVES = load_samples("negative")


def _ids(samples: list[Sample]) -> list[str]:
    return [sample.name for sample in samples]


@pytest.mark.parametrize("sample", POSITIVES, ids=_ids(POSITIVES))
def test_positive_sample_is_blocked_by_its_rule(sample: Sample) -> None:
    with pytest.raises(GuardBlocked) as blocked:
        screen_sample(sample)
    assert blocked.value.rule == sample.expect
    for secret in sample.own_secrets:
        assert secret not in str(blocked.value)


@pytest.mark.parametrize("sample", NEGATIVES, ids=_ids(NEGATIVES))
def test_negative_sample_passes(sample: Sample) -> None:
    screen_sample(sample)


def test_corpus_is_large_enough_and_labelled() -> None:
    assert len(POSITIVES) >= 150
    assert len(NEGATIVES) >= 300
    assert all(sample.expect != "clean" for sample in POSITIVES)
    assert all(sample.expect == "clean" for sample in NEGATIVES)
    # Each part of the requirement has positives of its own.
    families = {sample.expect.split(".")[0] for sample in POSITIVES}
    assert families == {"secret", "injection", "unicode", "branch"}
    for rule in (
        "secret.gitlab_token",
        "secret.github_token",
        "secret.aws_access_key",
        "secret.slack_token",
        "secret.google_api_key",
        "secret.stripe_key",
        "secret.private_key",
        "secret.jwt",
        "secret.generic_assignment",
        "secret.own_token",
        # The shapes issue 11 found missing.
        "secret.cli_credential",
        "secret.discord_token",
        "secret.discord_webhook",
        "secret.azure_key",
        "secret.azure_sas",
        "secret.huggingface_token",
        "secret.digitalocean_token",
        "secret.vault_token",
        "secret.telegram_token",
        "secret.shopify_token",
        "secret.databricks_token",
        "secret.sendgrid_key",
        "secret.url_credentials",
        "injection.instruction_override",
        "injection.role_override",
        "injection.hidden_instruction",
        "injection.data_exfiltration",
        "injection.role_token",
        "unicode.tag_characters",
        "unicode.zero_width",
        "unicode.bidi_control",
    ):
        assert any(sample.expect == rule for sample in POSITIVES), rule


def test_negatives_cover_the_realistic_lookalikes() -> None:
    names = [sample.name for sample in NEGATIVES]
    bodies = "\n".join(sample.body for sample in NEGATIVES)
    assert sum(name.startswith("diff_") for name in names) >= 4
    assert sum(name.startswith("lockfile_") for name in names) >= 6
    assert sum(name.startswith("base64_") for name in names) >= 4
    for marker in (
        '"integrity": "sha512-',  # package-lock.json
        'hash = "sha256:',  # poetry.lock / uv.lock
        "data:image/png;base64,iVBORw0KGgo",  # inline PNG
        "diff --git a/",
    ):
        assert marker in bodies, marker
    assert any("uuid" in name for name in names)
    assert any("sha" in name for name in names)
    # Negatives from every kind of text crewline writes or pushes.
    for prefix, least in (
        ("ci_log", 10),
        ("bug_report", 10),
        ("chat_template_docs", 8),
        ("lookalike_", 30),
        ("mr_or_commit", 8),
    ):
        assert sum(name.startswith(prefix) for name in names) >= least, prefix


def test_sample_headers_are_parsed_and_checked() -> None:
    sample = parse_sample(
        "x", "# expect: secret.own_token\n# screen: content\n# own-secret: abc12345\nbody\n"
    )
    assert (sample.expect, sample.screen, sample.own_secrets, sample.body) == (
        "secret.own_token",
        "content",
        ("abc12345",),
        "body\n",
    )
    with pytest.raises(ValueError, match="first line must be '# expect"):
        parse_sample("x", "body\n")
    with pytest.raises(ValueError, match="must be one of text, content, branch"):
        parse_sample("x", "# expect: clean\n# screen: email\nbody\n")
