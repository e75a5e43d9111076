"""The guard: screens everything crewline is about to write to GitLab.

Pure: no I/O. The caller (the GitLab gateway) audits the verdict and refuses the write;
a blocked call raises before anything is returned, so nothing partial can be sent.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

from forge.guard.assignments import assignment_hits, url_password_hits
from forge.guard.cli_secrets import cli_hits
from forge.guard.contextual import azure_hits, discord_hits, telegram_hits
from forge.guard.encoded import decoded_runs
from forge.guard.findings import (
    QUICK_ACTION_PREFIX,
    Finding,
    GuardBlocked,
    printable_excerpt,
    redact_secret,
)
from forge.guard.hidden import hidden_instruction_hits
from forge.guard.injection import REMOVE, injection_hits
from forge.guard.normalise import normalise
from forge.guard.prefixed import PREFIXED_RULES
from forge.guard.private_keys import private_key_hits
from forge.guard.quick_actions import neutralise_quick_actions, quick_action_spans
from forge.guard.refnames import ref_format_problem
from forge.guard.scantext import RuleIndex, ScanText
from forge.guard.secret_rules import FORMAT_RULES, ROTATE, SecretHit
from forge.guard.unicode_rules import unicode_hits

OWN_SECRET_RULE = "secret.own_token"
MIN_OWN_SECRET_LENGTH = 8
_MAX_REDACTION_ROUNDS = 3
# Findings kept per rule and scan: plenty to refuse a write; a text holding more (only a
# hostile one does) is redacted over several rounds, or whole. Keeps a text of 10,000
# repeated markers from costing 10,000 findings.
MAX_FINDINGS_PER_SOURCE = 256
# Printable ASCII runs inside binary content, as ``strings`` would show them.
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e\t]{8,}")


@dataclass(frozen=True)
class _Verdict:
    """Blocking findings with the reason of each, in text order."""

    findings: tuple[Finding, ...]
    reasons: tuple[str, ...]


_FORMATS = RuleIndex(FORMAT_RULES, lambda rule: rule.anchors)
_PREFIXED = RuleIndex(PREFIXED_RULES, lambda rule: rule.prefixes)


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
        pairs = [(self._finding(hit, text, where), hit.reason) for hit in self._secret_hits(scan)]
        if not secrets_only:
            pairs += [
                (Finding(rule, where, start, end, printable_excerpt(text[start:end])), reason)
                for rule, start, end, reason in self._injection_hits(text, scan)
            ]
            pairs += [
                (Finding(hit.rule, where, hit.start, hit.end, hit.codepoints), hit.reason)
                for hit in unicode_hits(text)
            ]
        if quick_actions:
            pairs += [
                (Finding(f"{QUICK_ACTION_PREFIX}{command}", where, start, end, f"/{command}"), "")
                for start, end, command in quick_action_spans(text)
            ]
        pairs.sort(key=lambda pair: (pair[0].start, pair[0].end, pair[0].rule))
        return [finding for finding, _ in pairs], [reason for _, reason in pairs]

    def _injection_hits(
        self, text: str, outer: ScanText | None = None
    ) -> Iterator[tuple[str, int, int, str]]:
        """Injection markers in the normalised text, at their offsets in ``text``; then
        whatever base64 or hex runs hide, reported at the run."""
        normalised = normalise(text)
        scan = outer if outer is not None and normalised.text is text else ScanText(normalised.text)
        found = [
            (hit.rule, hit.start, hit.end, hit.reason)
            for hit in islice(injection_hits(scan), MAX_FINDINGS_PER_SOURCE)
        ]
        found += [
            (rule, start, end, f"{label} found; {REMOVE}")
            for rule, start, end, label in islice(
                hidden_instruction_hits(scan), MAX_FINDINGS_PER_SOURCE
            )
        ]
        for rule, start, end, reason in found:
            yield rule, normalised.original(start), normalised.original(end), reason
        for start, end, decoded in islice(decoded_runs(text), MAX_FINDINGS_PER_SOURCE):
            inner = ScanText(decoded)
            hidden = [(hit.rule, hit.reason) for hit in injection_hits(inner)]
            hidden += [(hit.rule, hit.reason) for hit in self._secret_hits(inner, generic=False)]
            if hidden:
                rule, reason = hidden[0]
                yield rule, start, end, f"encoded text: {reason}"

    @staticmethod
    def _finding(hit: SecretHit, text: str, where: str) -> Finding:
        return Finding(
            hit.rule, where, hit.start, hit.end, redact_secret(text[hit.start : hit.end])
        )

    def _secret_hits(self, scan: ScanText, *, generic: bool = True) -> list[SecretHit]:
        """Secret hits without overlaps: own tokens win, then known formats, then generic."""
        kept: list[SecretHit] = []
        starts: list[int] = []  # of the kept hits, sorted; kept hits never overlap
        for hit in self._candidate_secret_hits(scan, generic):
            index = bisect_left(starts, hit.start)
            before = kept[index - 1] if index > 0 else None
            after = kept[index] if index < len(kept) else None
            if (before is None or before.end <= hit.start) and (
                after is None or hit.end <= after.start
            ):
                starts.insert(index, hit.start)
                kept.insert(index, hit)
        return kept

    def _candidate_secret_hits(self, scan: ScanText, generic: bool) -> Iterator[SecretHit]:
        text = scan.text
        for secret in self._own_secrets:
            start = text.find(secret)
            while start != -1:
                reason = f"crewline's own configured token found; {ROTATE}"
                yield SecretHit(OWN_SECRET_RULE, start, start + len(secret), reason)
                start = text.find(secret, start + len(secret))
        sources: list[Iterable[SecretHit]] = [private_key_hits(scan)]
        # Most writes hold none of a rule's anchors: checking that first is far cheaper
        # than starting the rule's search.
        sources += [rule.hits(scan) for rule in _FORMATS.candidates(scan) if rule.present(scan)]
        sources += [rule.hits(scan) for rule in _PREFIXED.candidates(scan) if rule.present(scan)]
        sources += [discord_hits(scan), telegram_hits(scan), azure_hits(scan)]
        if generic:
            sources += [cli_hits(scan), assignment_hits(scan), url_password_hits(scan)]
        for source in sources:
            yield from islice(source, MAX_FINDINGS_PER_SOURCE)

    # -- refusing things --------------------------------------------------------------

    @staticmethod
    def _raise_if_blocking(findings: list[Finding], reasons: list[str]) -> None:
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
