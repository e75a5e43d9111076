"""Small text utilities used by the crewline demo."""

from app.text import slugify, truncate, word_count

__all__ = ["slugify", "truncate", "word_count"]
