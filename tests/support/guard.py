"""The guard corpus: loading samples and screening each the way crewline would; and fake
credentials generated at run time for the guard's tests.

Shared by tests/test_guard*.py and bench/guard.py. Each sample file starts with
header lines: ``# expect: <rule>`` (``clean`` for negatives), optionally
``# screen: text|content|branch`` (default ``text``) and ``# own-secret: <token>``.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

from forge.guard import Guard

CORPUS = Path(__file__).resolve().parent.parent / "guard_corpus"
_HEADER = re.compile(r"# (expect|screen|own-secret): (.*)\n")
SCREENS = ("text", "content", "branch")


@dataclass(frozen=True)
class Sample:
    name: str
    expect: str
    screen: str
    own_secrets: tuple[str, ...]
    body: str


def parse_sample(name: str, raw: str) -> Sample:
    fields: dict[str, list[str]] = {}
    position = 0
    while match := _HEADER.match(raw, position):
        fields.setdefault(match.group(1), []).append(match.group(2).strip())
        position = match.end()
    if "expect" not in fields:
        raise ValueError(f"{name}: the first line must be '# expect: <rule>' (or 'clean')")
    screen = fields.get("screen", ["text"])[0]
    if screen not in SCREENS:
        raise ValueError(f"{name}: '# screen: {screen}' must be one of {', '.join(SCREENS)}")
    body = raw[position:]
    if screen == "branch":
        body = body.rstrip("\n")
    return Sample(name, fields["expect"][0], screen, tuple(fields.get("own-secret", [])), body)


def load_samples(kind: str) -> list[Sample]:
    """Every sample under ``guard_corpus/<kind>`` (``positive`` or ``negative``), by name."""
    paths = sorted((CORPUS / kind).glob("*.txt"))
    return [parse_sample(path.stem, path.read_text(encoding="utf-8")) for path in paths]


def screen_sample(sample: Sample, guard: Guard | None = None) -> None:
    """Screen ``sample`` as crewline would screen that kind of write; raises GuardBlocked.

    ``guard``: one built with the sample's own secrets (a new one when not given)."""
    guard = guard if guard is not None else Guard(own_secrets=sample.own_secrets)
    if sample.screen == "text":
        guard.screen_text(sample.body, where=sample.name)
    elif sample.screen == "content":
        guard.screen_content(sample.body, where=sample.name)
    else:
        guard.screen_branch(sample.body)


ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
URLSAFE = ALNUM + "-_"


def fake_token(length: int, alphabet: str = ALNUM, *, prefix: str = "", seed: object = 0) -> str:
    """A random stand-in for a credential, made at run time so the repository holds no
    credential-shaped literal. Deterministic for a given (length, alphabet, prefix, seed)."""
    rng = random.Random(f"{seed}:{prefix}:{length}:{alphabet}")
    return prefix + "".join(rng.choice(alphabet) for _ in range(length))


def fake_jwt(seed: object = 0) -> str:
    """A JWT with a real header and claims and a random signature."""

    def part(claims: dict[str, object]) -> str:
        raw = json.dumps(claims, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part({"alg": "HS256", "typ": "JWT"})
    claims = part({"sub": "1234567890", "name": "crewline", "iat": 1716000000})
    return f"{header}.{claims}.{fake_token(43, URLSAFE, seed=seed)}"


def fake_private_key(seed: object = 0) -> str:
    """A PEM private-key block whose body is random base64."""
    body = base64.b64encode(random.Random(f"key:{seed}").randbytes(600)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"


# Literals the guard's rules start a search at, and shapes that bait a backtracking
# engine: repeated, followed by long runs of a token alphabet, or nested in each other.
_BAIT = (
    "glpat-", "ghp_", "github_pat_", "AKIA", "aws_secret_access_key=", "xoxb-", "AIza",
    "sk_live_", "sk-", "sk-ant-api03-", "T3BlbkFJ", "npm_", "pypi-AgE", "eyJ", "eyJa.",
    "authorization: bearer ", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN ", "Proc-Type: ",
    "\\n", "> ", "# ", '"+"', "password=", "api_key: ", "token = '", "SECRET_KEY=",
    "://user:", "://", "@", "hf_", "dop_v1_", "hvs.", "shpat_", "dapi", "SG.", ":AA", "Q~",
    "AccountKey=", "sig=", "sv=2022-11-02&", "--password ", " -p", "docker login -p ",
    " -u a:", "ignore ", "ignore all previous ", "you are now ", "<|", "<|im_start|>", "[",
    "<<", "</s>", "<s>", "<!--", "<details>", "![x](https://e.example/?d=", "MTA", ".",
    "A" * 3, "0" * 3, "/merge ", "\n/", "```\n", "\r", "\u200b", "\u202e", "ｉ", "і",
)  # fmt: skip


def adversarial_cases(size: int = 64_000) -> list[tuple[str, str]]:
    """(name, text) pairs of about ``size`` characters built to be slow to screen."""
    cases: list[tuple[str, str]] = []
    for bait in _BAIT:
        label = bait.encode("unicode_escape").decode()[:24]
        cases.append((f"repeat {label}", (bait * (size // len(bait) + 1))[:size]))
        run = "a1B2" * (size // 8)
        cases.append((f"{label} + token run", bait + run))
        cases.append((f"{label} + spaces + run", bait + " " * (size // 2) + run[: size // 4]))
        cases.append((f"{label} / 16 chars", ((bait + fake_token(16)) * size)[:size]))
    cases.append(("key header + fields", "-----BEGIN RSA PRIVATE KEY-----" + "\na:" * (size // 3)))
    cases.append(
        ("key header + nested bait", "-----BEGIN RSA PRIVATE KEY-----\n" + "a-b: " * (size // 5))
    )
    cases.append(("base64 lines", (fake_token(76, ALNUM + "+/") + "\n") * (size // 77)))
    cases.append(("long base64", fake_token(size, ALNUM + "+/")))
    cases.append(("hex", fake_token(size, "0123456789abcdef")))
    cases.append(("words", ("ignore previous " * size)[:size]))
    cases.append(("mixed non-ascii", ("ｉgnоre\u200b " * size)[:size]))
    return cases
