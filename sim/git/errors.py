"""Errors of the simulator's git layer; route modules map them to GitLab's answers."""

from __future__ import annotations


class GitError(Exception):
    """A git operation failed; the message carries git's stderr."""


class GitConflict(GitError):
    """A merge would conflict."""


class GitStaleRef(GitError):
    """The branch moved (or was created/deleted) since the caller looked at it."""


class GitActionError(GitError):
    """A commit action is invalid (file exists / is missing / bad path / bad encoding)."""
