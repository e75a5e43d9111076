"""Text helpers: slugs for URLs, word counts, and truncation on word boundaries."""

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """``"Hello, World!"`` -> ``"hello-world"``: ASCII, lower case, words joined by dashes."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_WORD.sub("-", ascii_text.lower()).strip("-")


def word_count(text: str) -> int:
    """The number of whitespace-separated words in ``text``."""
    return len(text.split())


def truncate(text: str, limit: int, ellipsis: str = "...") -> str:
    """``text`` cut to at most ``limit`` characters, on a word boundary when possible."""
    if limit < len(ellipsis):
        raise ValueError(f"limit must be at least {len(ellipsis)}, got {limit}")
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ellipsis)]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + ellipsis
