"""No confinement: the command runs as crewline's own user, seeing what crewline sees.

Only for machines where bubblewrap cannot run; crewline warns loudly at start and in
`crewline doctor` when it falls back to this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from roles.sandbox.base import Launch


class NoSandbox:
    name = "none"

    def wrap(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        writable: Sequence[Path] = (),
        readable: Sequence[Path] = (),
    ) -> Launch:
        return Launch(list(argv), dict(env))
