"""The demo agent whose sessions are lost between turns, like Claude Code or Gemini after the
working directory changed: it reports a session id, but resuming any session fails as
`claude --resume` does ("No conversation found with session ID ..."). Each call (task kind,
the session offered, the prompt) goes to loses_sessions.log in its transcript directory."""

import contextlib
import io
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path

from roles.agents import demo_agent

prompt = sys.stdin.read()
offered = os.environ.pop("CREWLINE_SESSION_ID", None)
# Its own transcript directory: in the sandbox it can write nowhere else outside the worktree.
log = Path(os.environ["CREWLINE_TRANSCRIPT_DIR"]) / "loses_sessions.log"
with log.open("a") as out:
    kind = os.environ.get("CREWLINE_TASK_KIND")
    out.write(json.dumps({"kind": kind, "session": offered, "prompt": prompt}) + "\n")
if offered:
    print(f"No conversation found with session ID: {offered}", file=sys.stderr)
    sys.exit(1)
with tempfile.TemporaryDirectory() as nowhere:
    os.environ["CREWLINE_TRANSCRIPT_DIR"] = nowhere
    sys.stdin = io.StringIO(prompt)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        demo_agent.main()
print("\n".join(printed.getvalue().rstrip().splitlines()[:-1]))
print(json.dumps({"session_id": uuid.uuid4().hex[:12]}))
