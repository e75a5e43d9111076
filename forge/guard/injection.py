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
from dataclasses import dataclass, field
from typing import Final

from forge.guard.scantext import (
    ALNUM,
    Anchors,
    RuleIndex,
    ScanText,
    register_anchors,
    register_words,
)

REMOVE: Final = (
    "crewline does not relay instructions aimed at AI agents; remove or rephrase the passage"
)

_QUALIFIERS: Final = (
    r"(?:previous|prior|above|earlier|preceding|former|foregoing|original|initial|system"
    r"|developer|all|existing|current|old|given|default|safety)"
)
_NOUNS: Final = (
    r"(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guardrails|messages"
    r"|context|commands|constraints|programming|guidance|orders|policies|restrictions"
    r"|limitations|safeguards|training)"
)
# Literals every match of ``_NOUNS`` contains, for the prefilter.
_NOUN_WORDS: Final = (
    "instruction", "prompt", "direction", "directive", "rules", "guidelines", "guardrails",
    "messages", "context", "commands", "constraints", "programming", "guidance", "orders",
    "policies", "restrictions", "limitations", "safeguards", "training",
)  # fmt: skip
# What else a role reassignment, a DAN prompt, a replacement task or a template token
# needs besides its anchor (one word of each group), for the prefilter.
_ROLE_WORDS: Final = (
    "acting", "playing", "mode", "dan", "longer", "unrestricted", "unfiltered", "uncensored",
    "jailbroken", "amoral", "evil", "act", "respond", "answer", "behave", "free",
)  # fmt: skip
_DAN_WORDS: Final = (
    "anything", "dan", "character", "unrestricted", "unfiltered", "uncensored", "jailbroken",
    "ethical", "moral", "content", "safety", "freed", "liberated", "restrictions", "rules",
    "guidelines", "limits", "filters",
)  # fmt: skip
_TASK_WORDS: Final = (
    "instruction", "directive", "orders", "task", "goal", "objective", "mission", "purpose",
)  # fmt: skip
# "[" and what may follow it in a match: a space, a tab, "/" or one of the words. ("[/" covers
# every closing form: "[/inst", "[/ inst", "[/available_tools"...)
_TEMPLATE_ANCHORS: Final = (
    "[inst", "[/", "[ ", "[\t", "[system_prompt", "[available_tools", "[tool_calls",
    "[tool_results", "<<", "<start_of_turn>", "<end_of_turn>",
)  # fmt: skip
_TEMPLATE_WORDS: Final = (
    "inst", "system_prompt", "available_tools", "tool_calls", "tool_results", "sys", "_of_turn>",
)  # fmt: skip
# The verbs every override uses are rare words; the paraphrases built on common words
# (set aside, drop, skip…) are anchored with the space that follows them, or a search
# would start at every "set(" and "drop" in code. Tabs or line breaks inside those
# paraphrases are not caught; the core verbs tolerate any whitespace.
_OVERRIDE_VERBS: Final = (
    "ignore", "disregard", "forget", "override", "bypass", "discard", "abandon", "neglect",
    "overrule", "nullify", "dismiss", "set aside", "put aside", "throw away", "drop ",
    "skip ", "cancel ", "erase ",
)  # fmt: skip


@dataclass(frozen=True)
class _Marker:
    """A marker pattern. Lower-case patterns run on the lower-cased text.

    ``word_start``: must not follow a letter or digit. ``line_start``: only indentation
    or ``>`` quoting may precede it on its line. ``anchors``: the literal strings every
    match starts with. ``requires``: groups of lower-case literals of which every match
    also contains one per group (read off the pattern). Many anchors are common words
    ("you", "do", "all") that would make the prefilter report a hit in most texts; a
    marker with ``requires`` is gated by those rarer words instead (the first group
    indexes it, see ``ScanText.has_each``), and its anchors are not registered, so the
    search looks for each of them (``ScanText.may_occur``) once the gate has passed.
    """

    rule: str
    label: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    lowered: bool = True
    word_start: bool = True
    line_start: bool = False
    requires: tuple[tuple[str, ...], ...] = ()
    # What the search starts from: the registered anchors, or (for a marker gated by
    # ``requires``) the plain anchors, each searched for once the gate has passed.
    search: Anchors | tuple[str, ...] = field(init=False, repr=False, compare=False)
    required: tuple[Anchors, ...] = field(init=False, repr=False, compare=False)
    gate: Anchors = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.requires:
            required = register_words(*self.requires)
            object.__setattr__(self, "search", self.anchors)
            object.__setattr__(self, "required", required)
            # The literals that index the marker: one of them occurs in every match.
            object.__setattr__(self, "gate", required[0])
        else:
            anchors = register_anchors(self.anchors, self.kind)
            object.__setattr__(self, "search", anchors)
            object.__setattr__(self, "required", ())
            object.__setattr__(self, "gate", anchors)

    @property
    def kind(self) -> str:
        """How the anchors are looked for (see ``register_anchors``)."""
        return "lowered" if self.lowered else "raw"


_OVERRIDE: Final = "injection.instruction_override"
_ROLE: Final = "injection.role_override"
_TOKEN: Final = "injection.role_token"

_MARKERS: Final[tuple[_Marker, ...]] = (
    _Marker(
        _OVERRIDE,
        "an instruction override",
        re.compile(
            r"(?:ignore|disregard|forget|override|bypass|discard|skip|drop|abandon|neglect"
            r"|overrule|cancel|erase|nullify|dismiss|throw\s+away|set\s+aside|put\s+aside)"
            r"\s{1,8}+(?:(?:all|any|the|your|my|of|these|those|every|about)\s{1,8}+){0,4}+"
            rf"{_QUALIFIERS}\s{{1,8}}+(?:[a-z]{{1,20}}+\s{{1,8}}+)?{_NOUNS}\b"
        ),
        _OVERRIDE_VERBS,
        requires=(_OVERRIDE_VERBS, _NOUN_WORDS),
    ),
    _Marker(
        _OVERRIDE,
        "an instruction override",
        re.compile(
            r"(?:previous|prior|above|earlier|preceding|original|initial|system|all)\s{1,8}+"
            rf"{_NOUNS}\s{{1,8}}+(?:are|is)\s{{1,8}}+(?:now\s{{1,8}}+)?(?:void|null|cancell?ed"
            r"|revoked|obsolete|superseded|no\s{1,8}+longer\s{1,8}+(?:valid|apply|applicable"
            r"|in\s+effect))"
        ),
        (
            "previous",
            "prior",
            "above",
            "earlier",
            "preceding",
            "original",
            "initial",
            "system",
            "all",
        ),
        requires=(
            ("void", "null", "cancel", "revoked", "obsolete", "superseded", "longer"),
            _NOUN_WORDS,
        ),
    ),
    _Marker(
        _OVERRIDE,
        "an instruction override",
        re.compile(
            r"pay\s{1,8}+no\s{1,8}+(?:attention|heed|mind)\s{1,8}+to\s{1,8}+"
            rf"(?:(?:any|the|your|all)\s{{1,8}}+){{0,2}}+{_QUALIFIERS}\b"
        ),
        ("pay",),
        requires=(("pay",), ("attention", "heed", "mind")),
    ),
    _Marker(
        _OVERRIDE,
        "an attempt to extract the system prompt",
        re.compile(
            r"(?:reveal|print|output|repeat|leak|dump|show\s+me|disclose|recite)\s{1,8}+"
            r"(?:your|the)\s{1,8}+(?:full\s{1,8}+|entire\s{1,8}+|exact\s{1,8}+)?"
            r"(?:system|initial|hidden|original|secret)\s{1,8}+(?:prompt|instructions|message)"
        ),
        ("reveal", "print", "output", "repeat", "leak", "dump", "show", "disclose", "recite"),
        requires=(
            ("prompt", "instructions", "message"),
            ("system", "initial", "hidden", "original", "secret"),
        ),
    ),
    _Marker(
        _OVERRIDE,
        "an instruction override",
        re.compile(
            r"(?:do\s{1,8}+not|don'?t|stop|no\s{1,8}+longer)\s{1,8}+(?:follow(?:ing)?|obey(?:ing)?"
            r"|adher(?:e|ing)\s{1,8}+to|comply(?:ing)?\s{1,8}+with)\s{1,8}+"
            rf"(?:(?:any|the|your)\s{{1,8}}+){{0,3}}+{_QUALIFIERS}\s{{1,8}}+{_NOUNS}\b"
        ),
        ("do", "don", "stop", "no"),
        requires=(("follow", "obey", "adher", "comply"), _NOUN_WORDS),
    ),
    _Marker(
        _ROLE,
        "an attempt to reassign the model's role",
        re.compile(
            r"(?:you\s{1,8}+are|you'?re|from\s{1,8}+now\s{1,8}+on,?\s{1,8}+you\s{1,8}+(?:are|will))"
            r"\s{1,8}+(?:now\s{1,8}+)?(?:acting\s{1,8}+as|playing|role-?playing|in\s{1,8}+\w{1,20}+"
            r"\s{1,8}+mode|dan\b|no\s{1,8}+longer\s{1,8}+(?:bound|restricted|an?\s{1,8}+ai)"
            r"|an?\s{1,8}+(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|evil)\b"
            r"|(?:act|respond|answer|behave)\s{1,8}+as\b|free\s{1,8}+(?:of|from)\s{1,8}+"
            r"(?:all|any|your)\b)"
        ),
        ("you", "from"),
        requires=(_ROLE_WORDS, ("you",)),
    ),
    _Marker(
        _ROLE,
        "a DAN-style jailbreak",
        re.compile(
            r"(?:do\s{1,8}+anything\s{1,8}+now|dan\s{1,8}+mode|stay\s{1,8}+in\s{1,8}+character"
            r"|(?:act|respond|answer)\s{1,8}+as\s{1,8}+(?:dan|an?\s{1,8}+(?:unrestricted|unfiltered"
            r"|uncensored|jailbroken)\s{1,8}+(?:ai|model|assistant|llm|chatbot))\b"
            r"|without\s{1,8}+(?:any\s{1,8}+)?(?:ethical|moral|content|safety)\s{1,8}+"
            r"(?:restrictions|guidelines|filters|limits|constraints)"
            r"|you\s{1,8}+have\s{1,8}+(?:been\s{1,8}+)?(?:freed|liberated|jailbroken|no\s{1,8}+"
            r"(?:restrictions|rules|guidelines|limits|filters)))"
        ),
        ("do", "dan", "stay", "act", "respond", "answer", "without", "you"),
        requires=(_DAN_WORDS,),
    ),
    _Marker(
        _ROLE,
        "an attempt to reassign the model's role",
        re.compile(
            r"pretend\s+(?:that\s+)?you\s+(?:are|have)\s+no\s+(?:restrictions|rules|guidelines|limits)"
        ),
        ("pretend",),
        requires=(("pretend",), ("restrictions", "rules", "guidelines", "limits")),
    ),
    _Marker(
        _ROLE,
        "an attempt to reassign the model's role",
        re.compile(r"(?:developer|jailbreak|god)\s+mode\s+(?:enabled|activated|on)\b"),
        ("developer", "jailbreak", "god"),
        requires=(("developer", "jailbreak", "god"), ("mode",)),
    ),
    _Marker(
        "injection.new_instructions",
        "a block of replacement instructions",
        re.compile(
            r"(?:new|real|actual|true|hidden|secret|system|override|updated|revised)\s{1,8}+"
            r"(?:instructions?|directives?|orders)\s{0,8}+:"
            r"|your\s{1,8}+(?:real|actual|true|new)\s{1,8}+(?:task|goal|objective|mission"
            r"|instructions?|purpose)\s{1,8}+(?:is|are)\b"
        ),
        (
            "new",
            "real",
            "actual",
            "true",
            "hidden",
            "secret",
            "system",
            "override",
            "updated",
            "revised",
            "your",
        ),
        requires=(_TASK_WORDS,),
    ),
    _Marker(
        _TOKEN,
        "a fake chat-template role or delimiter token",
        re.compile(
            r"<\|[ \t]{0,4}+(?:im_start|im_end|im_sep|system|user|assistant|endoftext|begin_of_text"
            r"|end_of_text|start_header_id|end_header_id|eot_id|eom_id|fim_prefix|fim_middle"
            r"|fim_suffix|ipython|tool_call|tool_response|end|start|message|channel|return"
            r"|constrain|call|python_tag|header_start|header_end|eot|begin▁of▁sentence"
            r"|end▁of▁sentence|start_of_turn_token|end_of_turn_token|system_token|user_token"
            r"|chatbot_token|reserved_special_token_\d{1,4})[ \t]{0,4}+\|>"
            r"|<\|[a-z][a-z0-9_]{1,40}+\|>"
        ),
        ("<|",),
        word_start=False,
    ),
    _Marker(
        _TOKEN,
        "a fake chat-template role or delimiter token",
        re.compile(
            r"\[[ \t]{0,4}+/?[ \t]{0,4}+(?:inst|system_prompt|available_tools|tool_calls"
            r"|tool_results)[ \t]{0,4}+\]|<<[ \t]{0,4}+/?[ \t]{0,4}+sys[ \t]{0,4}+>>"
            r"|<(?:start|end)_of_turn>"
        ),
        _TEMPLATE_ANCHORS,
        word_start=False,
        requires=(_TEMPLATE_ANCHORS, _TEMPLATE_WORDS),
    ),
    _Marker(
        _TOKEN,
        "a fake chat-template role or delimiter token",
        re.compile(r"#{1,6}[ \t]*(?:system|instructions?)[ \t]*:"),
        ("#",),
        word_start=False,
        line_start=True,
        requires=(("system", "instruction"),),
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

_MARKER_INDEX: Final = RuleIndex(_MARKERS, lambda marker: marker.gate)

# "</s>" is the end-of-sequence token of Llama-family models, but also the closing tag of
# HTML strikethrough. It counts as a marker only when no "<s>" opened before it.
_EOS_TOKEN: Final = re.compile(r"<\s*/\s*s\s*>")
_STRIKE_OPEN: Final = re.compile(r"<s(?:\s[^>]*)?>")


@dataclass(frozen=True)
class InjectionHit:
    rule: str
    start: int
    end: int
    reason: str


def _reason(label: str) -> str:
    return f"{label} found; {REMOVE}"


def _unbalanced_eos_tokens(lowered: str) -> Iterator[InjectionHit]:
    if not _EOS_TOKEN.search(lowered):
        return  # most texts: one scan for "<" and no strike-through tags collected
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


# The bits of ``ScanText.found`` one of which (or a "<") every marker needs.
GATE: Final = _MARKER_INDEX.gate


def may_hit(scan: ScanText) -> bool:
    """Whether ``injection_hits`` can find anything: a marker's literals occur, or a "<"
    that could open an end-of-sequence token. A necessary condition, checked at once."""
    return bool(scan.found & _MARKER_INDEX.gate) or "<" in scan.text


def injection_hits(scan: ScanText) -> Iterator[InjectionHit]:
    """Every injection marker in the text."""
    for marker in _MARKER_INDEX.candidates(scan):
        if marker.requires:
            if not scan.has_each(marker.required):
                continue
        elif not scan.has_any(marker.gate):
            continue
        for match in scan.matches(marker.pattern, marker.search, lowered=marker.lowered):
            if marker.word_start and scan.preceded_by(match.start(), ALNUM):
                continue
            if marker.line_start and not scan.starts_line(match.start()):
                continue
            yield InjectionHit(marker.rule, match.start(), match.end(), _reason(marker.label))
    yield from _unbalanced_eos_tokens(scan.lowered)
