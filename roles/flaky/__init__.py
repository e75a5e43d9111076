"""The flaky-test doctor (decisions 0011 and 0030).

``excused``: the tests QA excused (failed, then passed on a retry). ``detect`` (pure):
candidates from a project's CI history. ``history``: that history read from GitLab.
``filing``: one ``flaky-test`` issue per test, shared by every host. ``stats`` (pure): the
failure rate with its interval, the validator's run count and verdict. ``diff_check``
(pure): what a fix must not do. ``doctor``: the pass the scheduler runs.
"""

from roles.flaky.excused import flaky_key, forget_flake, record_flakes

__all__ = ["flaky_key", "forget_flake", "record_flakes"]
