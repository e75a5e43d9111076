import unittest

from app.text import slugify, truncate, word_count


class SlugifyTest(unittest.TestCase):
    def test_punctuation_and_case(self) -> None:
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_accents_are_folded(self) -> None:
        self.assertEqual(slugify("Crème brûlée"), "creme-brulee")

    def test_empty(self) -> None:
        self.assertEqual(slugify("  !!  "), "")


class WordCountTest(unittest.TestCase):
    def test_counts_words(self) -> None:
        self.assertEqual(word_count("one two  three\nfour"), 4)

    def test_empty(self) -> None:
        self.assertEqual(word_count(""), 0)


class TruncateTest(unittest.TestCase):
    def test_short_text_is_unchanged(self) -> None:
        self.assertEqual(truncate("short", 10), "short")

    def test_cuts_on_a_word_boundary(self) -> None:
        self.assertEqual(truncate("the quick brown fox", 14), "the quick...")

    def test_limit_too_small(self) -> None:
        with self.assertRaises(ValueError):
            truncate("text", 2)


if __name__ == "__main__":
    unittest.main()
