"""The demo agent without a memory, like aider: it reports no session and never resumes one.
Each call (task kind, the session crewline offered, the prompt) goes to forgetful.log in
its transcript directory."""

import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from roles.agents import demo_agent

prompt = sys.stdin.read()
# Its own transcript directory: in the sandbox it can write nowhere else outside the worktree.
log = Path(os.environ["CREWLINE_TRANSCRIPT_DIR"]) / "forgetful.log"
call = {"kind": os.environ.get("CREWLINE_TASK_KIND"), "session": None, "prompt": prompt}
call["session"] = os.environ.pop("CREWLINE_SESSION_ID", None)
with log.open("a") as out:
    out.write(json.dumps(call) + "\n")
with tempfile.TemporaryDirectory() as nowhere:
    os.environ["CREWLINE_TRANSCRIPT_DIR"] = nowhere  # no session file survives the turn
    sys.stdin = io.StringIO(prompt)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        demo_agent.main()
# Everything but the demo agent's session report line.
print("\n".join(printed.getvalue().rstrip().splitlines()[:-1]))
