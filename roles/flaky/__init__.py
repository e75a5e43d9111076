"""The flaky-test doctor (decisions 0011 and 0030).

``excused``: the tests QA excused (failed, then passed on a retry) and the goals filed for
them. ``detect`` (pure): candidates from a project's CI history. ``history``: that history
read from GitLab. ``filing``: one ``flaky-test`` issue per test, shared by every host.
``stats`` (pure): the failure rate with its interval, the validator's run count and verdict.
``diff_check`` (pure): what a fix must not do.
"""

from roles.flaky.excused import (
    DoctorReport,
    file_goal,
    flake_digest,
    flaky_key,
    forget_flake,
    goal_description,
    marker,
    record_flakes,
    scan,
    settle,
    sightings_key,
)

__all__ = [
    "DoctorReport",
    "file_goal",
    "flake_digest",
    "flaky_key",
    "forget_flake",
    "goal_description",
    "marker",
    "record_flakes",
    "scan",
    "settle",
    "sightings_key",
]
