"""Which secret searches run on a text, in which order, and how their hits combine.

Every search has a gate: the bits of ``ScanText.found`` without one of which it finds
nothing (decisions 0025, 0035). Most writes open few gates or none, and a search whose
gate is closed is not even started: for a small write, starting a dozen searches that
find nothing used to cost more than the searches that run.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from functools import reduce
from itertools import chain, islice
from operator import or_
from typing import Final

from forge.guard import assignments, cli_secrets, contextual, private_keys, url_credentials
from forge.guard.prefixed import PREFIXED_RULES
from forge.guard.scantext import RuleIndex, ScanText
from forge.guard.secret_rules import FORMAT_RULES, ROTATE, SecretHit

OWN_SECRET_RULE: Final = "secret.own_token"
# Hits kept per search and scan: plenty to refuse a write; a text holding more (only a
# hostile one does) is redacted over several rounds, or whole. Keeps a text of 10,000
# repeated markers from costing 10,000 findings.
MAX_FINDINGS_PER_SOURCE: Final = 256

_FORMATS: Final = RuleIndex(FORMAT_RULES, lambda rule: rule.anchor_set)
_PREFIXED: Final = RuleIndex(PREFIXED_RULES, lambda rule: rule.prefix_set)
_Search = tuple[int, Callable[[ScanText], Iterable[SecretHit]]]
# Secrets recognised by their structure rather than a prefix.
_CONTEXTUAL: Final[tuple[_Search, ...]] = (
    (contextual.DISCORD_GATE, contextual.discord_hits),
    (contextual.TELEGRAM_GATE, contextual.telegram_hits),
    (contextual.AZURE_GATE, contextual.azure_hits),
)
# Generic shapes (an assignment, a command line, a URL): not looked for inside decoded
# base64, where they would be found in random-looking bytes.
_GENERIC: Final[tuple[_Search, ...]] = (
    (cli_secrets.GATE, cli_secrets.cli_hits),
    (assignments.GATE, assignments.assignment_hits),
    (url_credentials.URL_GATE, url_credentials.url_password_hits),
)

# Every search's gate: a text with none of these bits is offered no search.
_GATES_NOT_GENERIC: Final = reduce(
    or_, (gate for gate, _ in _CONTEXTUAL), private_keys.GATE | _FORMATS.gate | _PREFIXED.gate
)
_GATES: Final = reduce(or_, (gate for gate, _ in _GENERIC), _GATES_NOT_GENERIC)


def secret_hits(
    scan: ScanText, own_secrets: tuple[str, ...], *, generic: bool = True
) -> list[SecretHit]:
    """Secret hits without overlaps: own tokens win, then private keys, known formats,
    structured secrets and (when ``generic``) generic shapes, in that order."""
    text = scan.text
    own = (
        [hit for secret in own_secrets if secret in text for hit in _own(scan, secret)]
        if own_secrets
        else []
    )
    if not own and not scan.found & (_GATES if generic else _GATES_NOT_GENERIC):
        return own  # most writes: no search can find anything
    searches = _searches(scan, generic)
    if not own and not searches:
        return own
    kept: list[SecretHit] = []
    starts: list[int] = []  # of the kept hits, sorted; kept hits never overlap
    capped = (islice(search, MAX_FINDINGS_PER_SOURCE) for search in searches)
    for hit in chain(own, chain.from_iterable(capped)):
        index = bisect_left(starts, hit.start)
        before = kept[index - 1] if index > 0 else None
        after = kept[index] if index < len(kept) else None
        if (before is None or before.end <= hit.start) and (
            after is None or hit.end <= after.start
        ):
            starts.insert(index, hit.start)
            kept.insert(index, hit)
    return kept


def _own(scan: ScanText, secret: str) -> Iterator[SecretHit]:
    """Each occurrence of crewline's own configured ``secret``."""
    text = scan.text
    start = text.find(secret)
    while start != -1:
        reason = f"crewline's own configured token found; {ROTATE}"
        yield SecretHit(OWN_SECRET_RULE, start, start + len(secret), reason)
        start = text.find(secret, start + len(secret))


def _searches(scan: ScanText, generic: bool) -> list[Iterable[SecretHit]]:
    """The searches whose gate ``scan`` opens, started, in priority order."""
    found = scan.found
    searches: list[Iterable[SecretHit]] = []
    if found & private_keys.GATE:
        searches.append(private_keys.private_key_hits(scan))
    if found & _FORMATS.gate:
        searches += [rule.hits(scan) for rule in _FORMATS.candidates(scan) if rule.present(scan)]
    if found & _PREFIXED.gate:
        searches += [rule.hits(scan) for rule in _PREFIXED.candidates(scan) if rule.present(scan)]
    searches += [search(scan) for gate, search in _CONTEXTUAL if found & gate]
    if generic:
        searches += [search(scan) for gate, search in _GENERIC if found & gate]
    return searches
