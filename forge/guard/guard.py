"""The guard: screens everything crewline is about to write to GitLab.

Pure: no I/O. The caller (the GitLab gateway) audits the verdict and refuses the write;
a blocked call raises before anything is returned, so nothing partial can be sent.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from itertools import islice
from typing import Final

from forge.guard import hidden, injection
from forge.guard.encoded import decoded_runs
from forge.guard.findings import (
    QUICK_ACTION_PREFIX,
    Finding,
    GuardBlocked,
    printable_excerpt,
    redact_secret,
)
from forge.guard.injection import REMOVE, injection_hits
from forge.guard.normalise import normalise
from forge.guard.quick_actions import neutralise_quick_actions, quick_action_spans
from forge.guard.refnames import ref_format_problem
from forge.guard.scantext import LONG_RUN, NON_ASCII, ScanText
from forge.guard.secret_rules import SecretHit
from forge.guard.sources import MAX_FINDINGS_PER_SOURCE, secret_hits
from forge.guard.unicode_rules import unicode_hits

MIN_OWN_SECRET_LENGTH: Final = 8
_MAX_REDACTION_ROUNDS: Final = 3
# Printable ASCII runs inside binary content, as ``strings`` would show them.
_PRINTABLE_RUN: Final = re.compile(rb"[\x20-\x7e\t]{8,}")
_Hit = tuple[str, int, int, str]  # rule, start, end, reason
# What opens any injection search besides a "<" (see ``injection.may_hit``): a marker's
# or a hidden block's literal, a long run, or non-ASCII text (normalised first).
_INJECTION_GATES: Final = injection.GATE | hidden.GATE | LONG_RUN | NON_ASCII


class Guard:
    """Screens text, file contents, branch names and API payloads before they are sent."""

    def __init__(self, own_secrets: Iterable[str] = ()) -> None:
        # Longest first, so a token that contains another is reported as itself.
        unique = {secret for secret in own_secrets if len(secret) >= MIN_OWN_SECRET_LENGTH}
        self._own_secrets = tuple(sorted(unique, key=len, reverse=True))

    # -- finding things ---------------------------------------------------------------

    def scan(self, text: str, *, where: str = "text") -> list[Finding]:
        """Everything found in ``text``, quick actions included, in text order."""
        findings, _ = self._scan_with_reasons(text, where, quick_actions=True)
        return findings

    def _scan_with_reasons(
        self, text: str, where: str, *, quick_actions: bool, secrets_only: bool = False
    ) -> tuple[list[Finding], list[str]]:
        scan = ScanText(text)
        secrets = secret_hits(scan, self._own_secrets)
        injected = [] if secrets_only else self._injection_hits(text, scan)
        if not (secrets or injected or quick_actions or scan.found & NON_ASCII):
            return [], []  # most writes: nothing found, nothing more to look for
        pairs = [(self._finding(hit, text, where), hit.reason) for hit in secrets]
        if not secrets_only:
            pairs += [
                (Finding(rule, where, start, end, printable_excerpt(text[start:end])), reason)
                for rule, start, end, reason in injected
            ]
            if scan.found & NON_ASCII:
                pairs += [
                    (Finding(hit.rule, where, hit.start, hit.end, hit.codepoints), hit.reason)
                    for hit in unicode_hits(text)
                ]
        if quick_actions:
            pairs += [
                (Finding(f"{QUICK_ACTION_PREFIX}{command}", where, start, end, f"/{command}"), "")
                for start, end, command in quick_action_spans(text)
            ]
        if not pairs:
            return [], []
        pairs.sort(key=lambda pair: (pair[0].start, pair[0].end, pair[0].rule))
        return [finding for finding, _ in pairs], [reason for _, reason in pairs]

    def _injection_hits(self, text: str, outer: ScanText | None = None) -> list[_Hit]:
        """Injection markers in the normalised text, at their offsets in ``text``; then
        whatever base64 or hex runs hide, reported at the run."""
        outer = outer if outer is not None else ScanText(text)
        if not outer.found & _INJECTION_GATES and "<" not in text:
            return []  # ASCII, no marker's literal, no run, no "<": most writes
        normalised = normalise(text) if outer.found & NON_ASCII else None
        scan = outer if normalised is None or normalised.text is text else ScanText(normalised.text)
        found: list[_Hit] = []
        if injection.may_hit(scan):
            found += [
                (hit.rule, hit.start, hit.end, hit.reason)
                for hit in islice(injection_hits(scan), MAX_FINDINGS_PER_SOURCE)
            ]
        if scan.found & hidden.GATE:
            found += [
                (rule, start, end, f"{label} found; {REMOVE}")
                for rule, start, end, label in islice(
                    hidden.hidden_instruction_hits(scan), MAX_FINDINGS_PER_SOURCE
                )
            ]
        if normalised is not None and normalised.pieces:
            original = normalised.original
            found = [(rule, original(start), original(end), why) for rule, start, end, why in found]
        if outer.found & LONG_RUN:
            found += self._encoded_hits(text, outer)
        return found

    def _encoded_hits(self, text: str, scan: ScanText) -> list[_Hit]:
        """What base64 or hex runs of ``text`` hide, reported at the run."""
        found: list[_Hit] = []
        runs = islice(decoded_runs(text, scan.runs), MAX_FINDINGS_PER_SOURCE)
        for start, end, decoded in runs:
            inner = ScanText(decoded)
            inside = [(hit.rule, hit.reason) for hit in injection_hits(inner)]
            inside += [
                (hit.rule, hit.reason)
                for hit in secret_hits(inner, self._own_secrets, generic=False)
            ]
            if inside:
                rule, reason = inside[0]
                found.append((rule, start, end, f"encoded text: {reason}"))
        return found

    @staticmethod
    def _finding(hit: SecretHit, text: str, where: str) -> Finding:
        return Finding(
            hit.rule, where, hit.start, hit.end, redact_secret(text[hit.start : hit.end])
        )

    # -- refusing things --------------------------------------------------------------

    @staticmethod
    def _raise_if_blocking(findings: list[Finding], reasons: list[str]) -> None:
        if not findings:
            return
        blocking = [(f, r) for f, r in zip(findings, reasons, strict=True) if f.blocking]
        if blocking:
            first, reason = blocking[0]
            raise GuardBlocked(
                first.rule, first.where, reason, first.redacted, [f for f, _ in blocking]
            )

    def screen_text(self, text: str, *, where: str) -> str:
        """Prose crewline posts: refuse secrets and injection, neutralise quick actions."""
        self._raise_if_blocking(*self._scan_with_reasons(text, where, quick_actions=False))
        return neutralise_quick_actions(text)

    def redact(self, text: str, *, where: str = "text") -> tuple[str, list[Finding]]:
        """Text crewline composes from material it quotes (CI logs, test output, goal
        text): every blocking finding is replaced by ``[redacted: <rule>]`` and quick
        actions are neutralised. Returns the text to send and what was redacted.

        Never refuses: a CI log that prints a JWT must not stop QA's note. Redaction is
        repeated until a scan finds nothing (a removal could join two halves of a phrase).
        """
        redacted: list[Finding] = []
        for _ in range(_MAX_REDACTION_ROUNDS):
            findings = [f for f in self.scan(text, where=where) if f.blocking]
            if not findings:
                return neutralise_quick_actions(text), redacted
            redacted += findings
            text = _replace_spans(text, findings)
        # Every round removed something; give up keeping any of the remaining text.
        return f"[redacted: {redacted[-1].rule}]", redacted

    def screen_content(self, content: str | bytes, *, where: str) -> None:
        """Commit file contents: refuse secrets and injection; never rewrite.

        Binary content (a NUL byte, or bytes that are not UTF-8) is scanned for secrets
        only, in its printable ASCII runs: injection markers need readable text.
        """
        if isinstance(content, str) and content.isascii() and "\x00" not in content:
            text: str | None = content  # what the round trip below would give, at once
            data = b""
        else:
            data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
            text = _as_text(data)
        if text is not None:
            self._raise_if_blocking(*self._scan_with_reasons(text, where, quick_actions=False))
            return
        findings: list[Finding] = []
        reasons: list[str] = []
        for run in _PRINTABLE_RUN.finditer(data):
            run_findings, run_reasons = self._scan_with_reasons(
                run.group().decode("ascii"), where, quick_actions=False, secrets_only=True
            )
            findings += [_shifted(finding, run.start()) for finding in run_findings]
            reasons += run_reasons
        self._raise_if_blocking(findings, reasons)

    def screen_branch(self, name: str) -> None:
        """A branch name: refuse secrets, invisible Unicode and names git would reject."""
        where = "branch"
        self._raise_if_blocking(*self._scan_with_reasons(name, where, quick_actions=False))
        problem = ref_format_problem(name)
        if problem is not None:
            raise GuardBlocked(
                "branch.invalid",
                where,
                f"not a valid git branch name: {problem}; choose a name git check-ref-format accepts",
                printable_excerpt(name),
            )

    def screen_payload(
        self, payload: Mapping[str, object], *, where: str, text_fields: Collection[str]
    ) -> dict[str, object]:
        """Every string in ``payload``, recursively; quick actions neutralised in ``text_fields``.

        A field is a text field when its key (at any depth) is in ``text_fields``. All or
        nothing: every blocking finding in every field is collected, then one
        ``GuardBlocked`` is raised and nothing is returned.
        """
        screener = _PayloadScreener(self, text_fields)
        screened = screener.mapping(payload, where)
        if screener.blocked:
            first = screener.blocked[0]
            findings = [finding for error in screener.blocked for finding in error.findings]
            raise GuardBlocked(first.rule, first.where, first.reason, first.redacted, findings)
        return screened


class _PayloadScreener:
    """Walks a payload, building the screened copy and collecting every refusal."""

    def __init__(self, guard: Guard, text_fields: Collection[str]) -> None:
        self._guard = guard
        self._text_fields = text_fields
        self.blocked: list[GuardBlocked] = []

    def mapping(self, payload: Mapping[str, object], where: str) -> dict[str, object]:
        return {
            key: self.value(value, f"{where}.{key}", key in self._text_fields)
            for key, value in payload.items()
        }

    def value(self, value: object, where: str, is_text: bool) -> object:
        try:
            if isinstance(value, str):
                if is_text:
                    return self._guard.screen_text(value, where=where)
                self._guard.screen_content(value, where=where)
                return value
            if isinstance(value, bytes):
                self._guard.screen_content(value, where=where)
                return value
        except GuardBlocked as error:
            self.blocked.append(error)
            return value
        if isinstance(value, Mapping):
            return self.mapping(value, where)
        if isinstance(value, list | tuple):
            return [
                self.value(item, f"{where}[{index}]", is_text) for index, item in enumerate(value)
            ]
        if value is None or isinstance(value, bool | int | float):
            return value
        raise TypeError(
            f"{where}: the guard cannot screen a {type(value).__name__}; "
            "convert it to str, int, float, bool, None, a list or a mapping before sending"
        )


def _replace_spans(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding's span (overlapping spans merged) replaced by a label."""
    pieces: list[str] = []
    position = 0
    current: tuple[int, int, str] | None = None
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if current is not None and finding.start < current[1]:
            current = (current[0], max(current[1], finding.end), current[2])
            continue
        if current is not None:
            pieces += [text[position : current[0]], f"[redacted: {current[2]}]"]
            position = current[1]
        current = (finding.start, finding.end, finding.rule)
    if current is not None:
        pieces += [text[position : current[0]], f"[redacted: {current[2]}]"]
        position = current[1]
    pieces.append(text[position:])
    return "".join(pieces)


def _as_text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _shifted(finding: Finding, offset: int) -> Finding:
    return Finding(
        finding.rule, finding.where, finding.start + offset, finding.end + offset, finding.redacted
    )
