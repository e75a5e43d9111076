"""The goals `crewline demo` files, written for the built-in DEMO agent to follow.

Each goal spells out its files in ```demo-file``` blocks and its checks in ``Check:``
lines (see ``roles/agents/demo_agent.py``); a real agent would get the prose alone.
"""

from __future__ import annotations

from dataclasses import dataclass

FENCE = "```"


@dataclass(frozen=True)
class DemoGoal:
    title: str
    description: str
    expect_state: str  # where the goal must end for the demo to succeed
    expect_validations: int  # validation runs of its last developer run (2 = converged)
    story: str  # what the demo shows with it
    expect_dev_attempts: int = 1  # developer runs (2 = sent back once by QA)


def _block(kind: str, path: str, body: str) -> str:
    return f"{FENCE}{kind} {path}\n{body}{FENCE}"


TITLES = '''"""Title case that keeps small words small, as headlines do."""

SMALL = {"a", "an", "and", "of", "the", "to", "in", "on"}


def title_case(text: str) -> str:
    words = text.split()
    return " ".join(
        word.lower() if 0 < n < len(words) - 1 and word.lower() in SMALL else word.capitalize()
        for n, word in enumerate(words)
    )
'''

TITLES_TEST = """import unittest

from app.titles import title_case


class TitleCaseTest(unittest.TestCase):
    def test_small_words_stay_small(self) -> None:
        self.assertEqual(title_case("the lord of the rings"), "The Lord of the Rings")

    def test_empty(self) -> None:
        self.assertEqual(title_case(""), "")
"""

VOWELS = '''"""Counting vowels (English, ASCII and accented)."""

import unicodedata


def count_vowels(text: str) -> int:
    folded = unicodedata.normalize("NFKD", text.lower())
    return sum(1 for char in folded if char in "aeiou")
'''

VOWELS_FIRST_ATTEMPT = '''"""Counting vowels (English)."""


def count_vowels(text: str) -> int:
    return sum(1 for char in text.lower() if char in "aeiouy")
'''

VOWELS_TEST = """import unittest

from app.vowels import count_vowels


class CountVowelsTest(unittest.TestCase):
    def test_plain(self) -> None:
        self.assertEqual(count_vowels("Hello World"), 3)

    def test_y_is_not_a_vowel(self) -> None:
        self.assertEqual(count_vowels("rhythm"), 0)

    def test_accents_count(self) -> None:
        self.assertEqual(count_vowels("café"), 2)
"""

HEADLINE = '''"""Headlines: title case, cut to a length on a word boundary."""

from app.text import truncate
from app.titles import title_case


def headline(text: str, limit: int = 40) -> str:
    return truncate(title_case(text), limit)
'''

HEADLINE_TEST = """import unittest

from app.headline import headline


class HeadlineTest(unittest.TestCase):
    def test_cased_and_cut(self) -> None:
        self.assertEqual(headline("the return of the king and more", 24), "The Return of the...")
"""


LOGS = '''"""Error counting for log excerpts."""


def error_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if "ERROR" in line)
'''

LOG_SAMPLE = "INFO start\nERROR disk full\nINFO retry\nERROR disk full\n"

_LOGS_TEST = """import unittest
from pathlib import Path

from app.logs import error_count

SAMPLE = Path(__file__).parent / "fixtures" / "{name}"


class ErrorCountTest(unittest.TestCase):
    def test_sample(self) -> None:
        self.assertEqual(error_count(SAMPLE.read_text()), 2)
"""

LOGS_TEST_FIRST = _LOGS_TEST.format(name="sample.log")
LOGS_TEST = _LOGS_TEST.format(name="sample.txt")


GOALS: tuple[DemoGoal, ...] = (
    DemoGoal(
        title="Add a title_case helper",
        description="\n\n".join(
            [
                "Headlines need title case that keeps small words (of, the, and...) lower case.",
                'Check: python3 -c "from app.titles import title_case; '
                "assert title_case('war and peace') == 'War and Peace'\"",
                _block("demo-file", "app/titles.py", TITLES),
                _block("demo-file", "tests/test_titles.py", TITLES_TEST),
            ]
        ),
        expect_state="done",
        expect_validations=1,
        story="goes straight through",
    ),
    DemoGoal(
        title="Add count_vowels",
        description="\n\n".join(
            [
                "Count the vowels of a text; 'y' is not a vowel and accented vowels count.",
                "Check: python3 -c \"from app.vowels import count_vowels; assert count_vowels('aei') == 3\"",
                _block("demo-file-first-attempt", "app/vowels.py", VOWELS_FIRST_ATTEMPT),
                _block("demo-file", "app/vowels.py", VOWELS),
                _block("demo-file", "tests/test_vowels.py", VOWELS_TEST),
            ]
        ),
        expect_state="done",
        expect_validations=2,
        story="fails validation once, converges on the second attempt",
    ),
    DemoGoal(
        title="Add a headline helper",
        description="\n\n".join(
            [
                "Depends on #1",
                "Headlines are title-cased and cut on a word boundary.",
                'Check: python3 -c "from app.headline import headline; '
                "assert headline('a tale of two cities', 12) == 'A Tale...'\"",
                _block("demo-file", "app/headline.py", HEADLINE),
                _block("demo-file", "tests/test_headline.py", HEADLINE_TEST),
            ]
        ),
        expect_state="done",
        expect_validations=1,
        story="depends on the first goal: waits until it is done",
    ),
    DemoGoal(
        title="Count errors in a log excerpt",
        description="\n\n".join(
            [
                "Count the lines of a log excerpt that report an error, with a test on a "
                "sample log kept under tests/fixtures/.",
                'Check: python3 -c "from app.logs import error_count; '
                "assert error_count('ERROR x\\nok') == 1\"",
                _block("demo-file", "app/logs.py", LOGS),
                # The first attempt keeps its sample as *.log, which .gitignore excludes: the
                # tests pass in the worktree and fail in CI's clean checkout.
                _block("demo-file-first-attempt", "tests/test_logs.py", LOGS_TEST_FIRST),
                _block("demo-file-first-attempt", "tests/fixtures/sample.log", LOG_SAMPLE),
                _block("demo-file", "tests/test_logs.py", LOGS_TEST),
                _block("demo-file", "tests/fixtures/sample.txt", LOG_SAMPLE),
            ]
        ),
        expect_state="done",
        expect_validations=1,
        expect_dev_attempts=2,
        story="passes locally, fails in CI (its fixture was git-ignored), goes back once",
    ),
)
