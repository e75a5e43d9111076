"""Prompt-injection markers: text that tries to steer an AI agent reading it.

crewline's agents read issues, notes and repository files; crewline itself must never
be the one that plants instructions for them. Matching is case-insensitive and
tolerant of extra whitespace, except the ``Human:``/``Assistant:`` turn markers, which
match only in their conventional capitalisation so YAML keys such as ``assistant:``
in configuration files stay usable.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass

from forge.guard.scantext import ALNUM, ScanText, find_matches

REMOVE = "crewline does not relay instructions aimed at AI agents; remove or rephrase the passage"

_QUALIFIERS = r"(?:previous|prior|above|earlier|preceding|former|foregoing|original|initial|system|developer|all)"
_NOUNS = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guardrails|messages"
    r"|context|commands|constraints)"
)


@dataclass(frozen=True)
class _Marker:
    """A marker pattern. Lower-case patterns run on the lower-cased text.

    ``word_start``: must not follow a letter or digit. ``line_start``: only indentation
    or ``>`` quoting may precede it on its line. ``anchors``: the literal strings every
    match starts with.
    """

    rule: str
    label: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    lowered: bool = True
    word_start: bool = True
    line_start: bool = False


_OVERRIDE = "injection.instruction_override"
_ROLE = "injection.role_override"
_TOKEN = "injection.role_token"

_MARKERS: tuple[_Marker, ...] = (
    _Marker(
        _OVERRIDE,
        "an instruction override",
        re.compile(
            r"(?:ignore|disregard|forget|override|bypass|discard)\s+"
            r"(?:(?:all|any|the|your|my|of|these|those|every)\s+)*"
            rf"{_QUALIFIERS}\s+(?:[a-z]+\s+)?{_NOUNS}\b"
        ),
        ("ignore", "disregard", "forget", "override", "bypass", "discard"),
    ),
    _Marker(
        _OVERRIDE,
        "an instruction override",
        re.compile(
            r"(?:do\s+not|don'?t|stop)\s+(?:follow(?:ing)?|obey(?:ing)?)\s+"
            rf"(?:(?:any|the|your)\s+)*{_QUALIFIERS}\s+{_NOUNS}\b"
        ),
        ("do", "don", "stop"),
    ),
    _Marker(
        _ROLE,
        "an attempt to reassign the model's role",
        re.compile(
            r"you\s+are\s+now\s+(?:acting\s+as|playing|role-?playing|in\s+\w+\s+mode|dan\b"
            r"|no\s+longer\s+(?:bound|restricted|an?\s+ai)"
            r"|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken|different|new)\b)"
        ),
        ("you",),
    ),
    _Marker(
        _ROLE,
        "an attempt to reassign the model's role",
        re.compile(
            r"pretend\s+(?:that\s+)?you\s+(?:are|have)\s+no\s+(?:restrictions|rules|guidelines|limits)"
        ),
        ("pretend",),
    ),
    _Marker(
        _ROLE,
        "an attempt to reassign the model's role",
        re.compile(r"(?:developer|jailbreak|god)\s+mode\s+(?:enabled|activated|on)\b"),
        ("developer", "jailbreak", "god"),
    ),
    _Marker(
        "injection.new_instructions",
        "a block of replacement instructions",
        re.compile(r"(?:new|real|actual|true|hidden|secret|system|override)\s+instructions?\s*:"),
        ("new", "real", "actual", "true", "hidden", "secret", "system", "override"),
    ),
    _Marker(
        _TOKEN,
        "a fake chat-template role or delimiter token",
        re.compile(
            r"<\|\s*(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text"
            r"|end_of_text|start_header_id|end_header_id|eot_id|eom_id|fim_prefix|fim_middle"
            r"|fim_suffix|ipython|tool_call|tool_response)\s*\|>"
        ),
        ("<|",),
        word_start=False,
    ),
    _Marker(
        _TOKEN,
        "a fake chat-template role or delimiter token",
        re.compile(r"\[\s*/?\s*inst\s*\]|<<\s*/?\s*sys\s*>>"),
        ("[", "<<"),
        word_start=False,
    ),
    _Marker(
        _TOKEN,
        "a fake chat-template role or delimiter token",
        re.compile(r"#{1,6}[ \t]*(?:system|instructions?)[ \t]*:"),
        ("#",),
        word_start=False,
        line_start=True,
    ),
    _Marker(
        "injection.turn_marker",
        "a fake conversation turn marker",
        re.compile(r"(?:Human|HUMAN|Assistant|ASSISTANT)[ \t]*:"),
        ("Human", "HUMAN", "Assistant", "ASSISTANT"),
        lowered=False,
        line_start=True,
    ),
)

# "</s>" is the end-of-sequence token of Llama-family models, but also the closing tag of
# HTML strikethrough. It counts as a marker only when no "<s>" opened before it.
_EOS_TOKEN = re.compile(r"<\s*/\s*s\s*>")
_STRIKE_OPEN = re.compile(r"<s(?:\s[^>]*)?>")


@dataclass(frozen=True)
class InjectionHit:
    rule: str
    start: int
    end: int
    reason: str


def _reason(label: str) -> str:
    return f"{label} found; {REMOVE}"


def _unbalanced_eos_tokens(lowered: str) -> Iterator[InjectionHit]:
    open_tags = [match.start() for match in _STRIKE_OPEN.finditer(lowered)]
    used = 0
    for match in _EOS_TOKEN.finditer(lowered):
        if bisect_left(open_tags, match.start()) > used:
            used += 1
            continue
        yield InjectionHit(
            "injection.role_token",
            match.start(),
            match.end(),
            _reason("an end-of-sequence token"),
        )


def injection_hits(scan: ScanText) -> Iterator[InjectionHit]:
    """Every injection marker in the text."""
    for marker in _MARKERS:
        haystack = scan.lowered if marker.lowered else scan.text
        for match in find_matches(marker.pattern, haystack, marker.anchors):
            if marker.word_start and scan.preceded_by(match.start(), ALNUM):
                continue
            if marker.line_start and not scan.starts_line(match.start()):
                continue
            yield InjectionHit(marker.rule, match.start(), match.end(), _reason(marker.label))
    yield from _unbalanced_eos_tokens(scan.lowered)
