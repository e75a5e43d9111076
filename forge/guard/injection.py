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

REMOVE = "crewline does not relay instructions aimed at AI agents; remove or rephrase the passage"

_QUALIFIERS = r"(?:previous|prior|above|earlier|preceding|former|foregoing|original|initial|system|developer|all)"
_NOUNS = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guardrails|messages"
    r"|context|commands|constraints)"
)

_INJECTION_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    (
        "injection.instruction_override",
        "an instruction override",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|discard)\s+"
            r"(?:(?:all|any|the|your|my|of|these|those|every)\s+)*"
            rf"{_QUALIFIERS}\s+(?:[a-z]+\s+)?{_NOUNS}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "injection.instruction_override",
        "an instruction override",
        re.compile(
            r"\b(?:do\s+not|don'?t|stop)\s+(?:follow(?:ing)?|obey(?:ing)?)\s+"
            rf"(?:(?:any|the|your)\s+)*{_QUALIFIERS}\s+{_NOUNS}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "injection.role_override",
        "an attempt to reassign the model's role",
        re.compile(
            r"\byou\s+are\s+now\s+(?:acting\s+as|playing|role-?playing|in\s+\w+\s+mode|DAN\b"
            r"|no\s+longer\s+(?:bound|restricted|an?\s+ai)"
            r"|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken|different|new)\b)"
            r"|\bpretend\s+(?:that\s+)?you\s+(?:are|have)\s+no\s+(?:restrictions|rules|guidelines|limits)"
            r"|\b(?:developer|jailbreak|god)\s+mode\s+(?:enabled|activated|on)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "injection.new_instructions",
        "a block of replacement instructions",
        re.compile(
            r"\b(?:new|real|actual|true|hidden|secret|system|override)\s+instructions?\s*:",
            re.IGNORECASE,
        ),
    ),
    (
        "injection.role_token",
        "a fake chat-template role or delimiter token",
        re.compile(
            r"<\|\s*(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text"
            r"|end_of_text|start_header_id|end_header_id|eot_id|eom_id|fim_prefix|fim_middle"
            r"|fim_suffix|ipython|tool_call|tool_response)\s*\|>"
            r"|\[\s*/?\s*INST\s*\]|<<\s*/?\s*SYS\s*>>"
            r"|^[ \t>]*#{1,6}[ \t]*(?:system|instructions?)[ \t]*:",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
    (
        "injection.turn_marker",
        "a fake conversation turn marker",
        re.compile(r"^[ \t>]*(?:Human|HUMAN|Assistant|ASSISTANT)[ \t]*:", re.MULTILINE),
    ),
)

# "</s>" is the end-of-sequence token of Llama-family models, but also the closing tag of
# HTML strikethrough. It counts as a marker only when no "<s>" opened before it.
_EOS_TOKEN = re.compile(r"<\s*/\s*s\s*>", re.IGNORECASE)
_STRIKE_OPEN = re.compile(r"<s(?:\s[^>]*)?>", re.IGNORECASE)


@dataclass(frozen=True)
class InjectionHit:
    rule: str
    start: int
    end: int
    reason: str


def _reason(label: str) -> str:
    return f"{label} found; {REMOVE}"


def _unbalanced_eos_tokens(text: str) -> Iterator[InjectionHit]:
    open_tags = [match.start() for match in _STRIKE_OPEN.finditer(text)]
    used = 0
    for match in _EOS_TOKEN.finditer(text):
        if bisect_left(open_tags, match.start()) > used:
            used += 1
            continue
        yield InjectionHit(
            "injection.role_token",
            match.start(),
            match.end(),
            _reason("an end-of-sequence token"),
        )


def injection_hits(text: str) -> Iterator[InjectionHit]:
    """Every injection marker in ``text``."""
    for rule, label, pattern in _INJECTION_PATTERNS:
        for match in pattern.finditer(text):
            yield InjectionHit(rule, match.start(), match.end(), _reason(label))
    yield from _unbalanced_eos_tokens(text)
