"""Confinement with bubblewrap (``bwrap``): unprivileged Linux namespaces, no daemon.

What a confined command sees, mounted in this order (a later mount covers an earlier one):

1. the system read-only: ``/usr``, ``/etc``, ``/opt``, ``/bin``, ``/lib``... (symlinks kept);
2. a fresh ``/proc`` of its own PID namespace (no other process's ``/proc/<pid>``: neither
   crewline's environment nor its memory), a minimal ``/dev``, a private ``/tmp``;
3. read-only: the directories on its PATH, its program and a script's interpreter, crewline's
   own Python (the demo agent runs on it) and the operator's extra paths; read-write: its HOME
   (agents keep their logins and caches there) and the operator's extra writable paths;
4. hidden, even where 1-3 exposed them: crewline's database (and its journals), its workspace
   root (every mirror and worktree), its runs directory and the secret files named by
   ``CREWLINE_*_FILE``: an empty tmpfs over a directory, ``/dev/null`` over a file (even one
   that does not exist yet, so it cannot be created);
5. this launch's own paths on top: its working directory read-write and, for a linked git
   worktree, the shared repository read-only (other worktrees' administrative directories
   hidden), with this worktree's object directory and administrative directory (index,
   HEAD) replaced by private copies gone when the launch ends: ``git status``, ``diff`` and
   ``add`` work but nothing can change the refs, objects, index or config crewline's own git
   commands use.

No capability is kept, and when crewline runs as root the command runs as nobody (mapped to
root outside), so nothing inside can unmount or remount any of this. The network is shared
(agents call their model's API). ``--die-with-parent`` and the PID
namespace mean that killing bwrap kills everything inside; ``--new-session`` keeps the
command off crewline's terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from roles.sandbox.base import Launch, SandboxError
from roles.sandbox.paths import (
    by_depth,
    linked_worktree,
    program_dirs,
    search_path_dirs,
    within,
)

SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
PROBE_TIMEOUT_SECONDS = 20.0
# No capability inside, whoever runs crewline: as root bwrap keeps them all by default, and a
# command could then unmount what hides the database or remount the system writable.
_ALWAYS = (
    "--die-with-parent",
    "--new-session",
    "--unshare-pid",
    "--unshare-ipc",
    "--cap-drop",
    "ALL",
)
# As root, commands also run as an unprivileged user (mapped to root outside, so what they
# write in the worktree is crewline's): uid 0 without capabilities cannot set up a nested
# sandbox (Codex's: "bwrap: setting up uid map: Operation not permitted"), and file modes then
# bind it as they bind any user. 65534 (nobody/nogroup) exists in every distribution's passwd.
AS_ROOT = ("--unshare-user", "--uid", "65534", "--gid", "65534")


def python_dirs() -> list[Path]:
    """crewline's own interpreter and code: the demo agent and ``python -m`` helpers run on
    them (in a non-editable install the code is inside the prefix anyway)."""
    code = Path(__file__).resolve().parents[2]
    return [Path(sys.prefix), Path(sys.base_prefix), code]


class BwrapSandbox:
    name = "bwrap"

    def __init__(
        self,
        executable: str = "bwrap",
        *,
        hidden: Iterable[Path] = (),
        readable: Iterable[Path] = (),
        writable: Iterable[Path] = (),
    ) -> None:
        found = shutil.which(executable)
        if found is None:
            raise SandboxError(
                f"sandbox 'bwrap': {executable!r} is not on PATH; install bubblewrap "
                '(apt-get install bubblewrap) or set sandbox = "none"'
            )
        self.executable = found
        self.hidden = [Path(path).absolute() for path in hidden]
        self.readable = [Path(path).absolute() for path in readable]
        self.writable = [Path(path).absolute() for path in writable]

    def wrap(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        writable: Sequence[Path] = (),
        readable: Sequence[Path] = (),
    ) -> Launch:
        if not argv:
            raise ValueError("nothing to run: empty argv")
        cwd = Path(os.path.normpath(cwd.absolute()))
        args = [self.executable, *_ALWAYS, *(AS_ROOT if os.geteuid() == 0 else ()), *_system()]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
        path_env = env.get("PATH")
        seen = [*self.readable, *readable, *search_path_dirs(path_env)]
        seen += program_dirs(argv[0], path_env)
        home = env.get("HOME")
        rw = [*self.writable]
        if home and Path(home).is_absolute() and Path(home) != Path("/"):
            rw.append(Path(home))
        args += _binds(seen, rw)
        args += _hide(self.hidden, rw)
        git = _git_view(cwd)
        args += git.args
        own = by_depth([cwd, *(Path(p).absolute() for p in writable)])
        for path in own:
            args += ["--bind", str(path), str(path)]
        # A launch's own directory never uncovers what is hidden inside it.
        inside = [h for h in self.hidden if any(h != o and within(h, o) for o in own)]
        args += _hide(inside, [*rw, *own])
        args += ["--chdir", str(cwd), "--", *git.prefix, *argv]
        confined_env = dict(env)
        if "TMPDIR" in confined_env:
            # crewline's own temporary directory is not mounted; the private /tmp is.
            confined_env["TMPDIR"] = "/tmp"
        return Launch(args, confined_env)


def _hide(hidden: Iterable[Path], writable: Sequence[Path]) -> list[str]:
    """An empty tmpfs over each hidden directory, ``/dev/null`` over each hidden file.

    A file that does not exist yet is masked too where the command could create it (inside a
    writable bind; bwrap leaves an empty placeholder behind there): a crafted SQLite hot
    journal beside the database would otherwise be replayed into it on the next open.
    Elsewhere it could not be created on the host anyway (read-only, or a private tmpfs).
    """
    args: list[str] = []
    for path in by_depth(hidden):
        if path.is_dir() and not path.is_symlink():
            args += ["--tmpfs", str(path)]
        elif path.exists() or any(within(path.parent, root) for root in writable):
            args += ["--ro-bind", os.devnull, str(path)]
    return args


def _system() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_PATHS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    # /etc/resolv.conf may point into /run (systemd-resolved); name lookups need its target.
    resolv = Path(os.path.realpath("/etc/resolv.conf"))
    if resolv.exists() and not any(within(resolv, Path(name)) for name in SYSTEM_PATHS):
        args += ["--ro-bind", str(resolv.parent), str(resolv.parent)]
    return args


def _binds(readable: Iterable[Path], writable: Iterable[Path]) -> list[str]:
    """Read-only and read-write binds, parents first; a path asked for both is writable."""
    mode = {Path(os.path.normpath(path)): "--ro-bind-try" for path in readable}
    mode.update({Path(os.path.normpath(path)): "--bind-try" for path in writable})
    args: list[str] = []
    for path in by_depth(mode):
        if path == Path("/") or (mode[path] == "--ro-bind-try" and _system_covered(path)):
            continue
        args += [mode[path], str(path), str(path)]
    return args


# Each system path is one level below /: a path is under one when its first part is.
_SYSTEM_TOPS = frozenset(Path(name).name for name in SYSTEM_PATHS)
assert all(Path(name).parent == Path("/") for name in SYSTEM_PATHS)


def _system_covered(path: Path) -> bool:
    """``path`` is one of SYSTEM_PATHS or below one (read-only bound already). A part
    compare, not ``within`` per system path: a run's binds ask this a hundred times."""
    parts = path.parts
    return len(parts) > 1 and parts[0] == "/" and parts[1] in _SYSTEM_TOPS


@dataclass(frozen=True, slots=True)
class _GitView:
    args: list[str] = field(default_factory=list)  # bwrap mounts
    prefix: list[str] = field(default_factory=list)  # runs first, then execs the command


# Where the real object store and administrative directory are seen, read-only, inside.
GIT_SHARED = "/run/crewline-git"
# $1: the object directory (an empty tmpfs), $2: the administrative directory (an empty
# tmpfs): the first reads every shared object through an alternate, the second starts as a
# copy of the real one (HEAD, index...).
_GIT_SETUP = (
    f'mkdir -p "$1/info" && echo {GIT_SHARED}/objects > "$1/info/alternates" && '
    f'cp -pR {GIT_SHARED}/admin/. "$2" || '
    '{ echo "crewline sandbox: git set-up failed" >&2; exit 125; }; shift 2; exec "$@"'
)


def _git_view(cwd: Path) -> _GitView:
    """What git needs in a linked worktree: the shared repository read-only and the other
    worktrees' administrative directories hidden.

    git in the sandbox may still write objects and this worktree's administrative files (the
    index, HEAD): onto private copies, gone when the launch ends. Agents stage files (aider
    runs ``git add`` on every file it creates, and drops its edit when that fails), which
    writes objects, and the shared object store must stay read-only; the administrative
    directory is private too so that its index never names an object only the launch had.
    Refs and the config stay read-only: a commit or a config change still fails. crewline's
    own ``git add --all`` afterwards takes the work tree as it is."""
    dirs = linked_worktree(cwd)
    if dirs is None:
        return _GitView()
    objects = dirs.common / "objects"
    args = ["--ro-bind", str(dirs.common), str(dirs.common)]
    args += ["--ro-bind", str(objects), f"{GIT_SHARED}/objects", "--tmpfs", str(objects)]
    others = dirs.common / "worktrees"
    if others.is_dir() and within(dirs.private, others):
        args += ["--tmpfs", str(others)]
    args += ["--ro-bind", str(dirs.private), f"{GIT_SHARED}/admin", "--tmpfs", str(dirs.private)]
    prefix = ["/bin/sh", "-c", _GIT_SETUP, "crewline-git", str(objects), str(dirs.private)]
    return _GitView(args, prefix)


def probe(executable: str = "bwrap") -> str | None:
    """None when bubblewrap can run a confined ``true`` here (namespaces allowed, /proc
    mountable); else why not, in words an operator can act on."""
    try:
        sandbox = BwrapSandbox(executable)
    except SandboxError as error:
        return str(error)
    with tempfile.TemporaryDirectory(prefix="crewline-bwrap-probe-") as scratch:
        launch = sandbox.wrap(
            ["true"], cwd=Path(scratch), env={"PATH": os.defpath, "HOME": scratch}
        )
        try:
            finished = subprocess.run(
                launch.argv,
                env=launch.env,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{sandbox.executable} could not run a test command: {error}"
    if finished.returncode != 0:
        reason = finished.stderr.strip() or f"exit status {finished.returncode}"
        return (
            f"{sandbox.executable} cannot create its namespaces here ({reason}): allow "
            "unprivileged user namespaces (kernel.unprivileged_userns_clone=1, and on Ubuntu "
            "an AppArmor profile for bwrap), or in a container run with seccomp, AppArmor and "
            "/proc masking relaxed (see deploy/compose.yaml)"
        )
    return None
