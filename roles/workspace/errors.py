"""The errors of the workspace layer. Messages never carry a token: git's output is sanitized
before it is put into one (see :mod:`roles.workspace.gitcmd`)."""

from __future__ import annotations


class WorkspaceError(Exception):
    """A workspace could not be prepared, changed or cleaned up."""


class WorkspaceBusy(WorkspaceError):
    """Another worker (or another run of this one) holds the workspace's lease."""


class GitCommandError(WorkspaceError):
    """git exited with an unexpected status. ``command`` and ``stderr`` are sanitized."""

    def __init__(self, command: str, exit_code: int, stderr: str) -> None:
        self.command = command
        self.exit_code = exit_code
        self.stderr = stderr
        detail = stderr.strip() or "(no output)"
        super().__init__(f"`{command}` failed with exit status {exit_code}: {detail}")


class GitTimeout(GitCommandError):
    """git did not finish within ``workspaces.git_timeout_seconds`` and was killed."""


class PushRejected(WorkspaceError):
    """The remote refused the push. ``stale`` is True when the force-with-lease check failed:
    the branch on the remote is no longer at the sha the caller expected."""

    def __init__(self, branch: str, reason: str, *, stale: bool, detail: str) -> None:
        self.branch = branch
        self.reason = reason
        self.stale = stale
        self.detail = detail
        hint = (
            "the remote branch moved since it was last seen; fetch it and decide whether to "
            "rebase onto it or overwrite it with the new expected sha"
            if stale
            else "see git's message"
        )
        super().__init__(f"push of {branch} rejected ({reason}): {hint}. {detail}".strip())


def push_failure(branch: str, stdout: str, stderr: str) -> WorkspaceError:
    """The error for a failed push: :class:`PushRejected` when git reported the ref refused."""
    refused = [line for line in stdout.splitlines() if line.startswith("!")]
    if not refused:
        return WorkspaceError(f"push of {branch} failed: {stderr.strip() or stdout.strip()}")
    summary = refused[0].split("\t")[-1]
    reason = summary[summary.find("(") + 1 : summary.rfind(")")] if "(" in summary else summary
    detail = " ".join(
        line.strip() for line in stderr.splitlines() if line.startswith(("remote:", "error:"))
    )
    return PushRejected(branch, reason, stale="stale info" in summary, detail=detail)
