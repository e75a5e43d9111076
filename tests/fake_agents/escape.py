"""An agent that tries to read what crewline keeps from agents; prints one JSON object:
for each target, what it read (or ``DENIED <error>``).

argv: CREWLINE_PID SECRET_FILE DATABASE OTHER_WORKTREE_FILE OTHER_RUN_FILE
"""

import json
import sys


def attempt(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(1 << 16).decode("utf-8", "replace")
    except OSError as error:
        return f"DENIED {type(error).__name__}: {error.strerror}"


pid, secret_file, database, other_worktree, other_run = sys.argv[1:6]
sys.stdin.read()
print(
    json.dumps(
        {
            "environ": attempt(f"/proc/{pid}/environ"),
            "secret_file": attempt(secret_file),
            "database": attempt(database),
            "other_worktree": attempt(other_worktree),
            "other_run": attempt(other_run),
        }
    )
)
