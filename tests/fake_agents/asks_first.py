"""A fake PM agent that asks a question before planning, then plans once answered.

It logs each turn (the session it was given, the session it reports, its working directory,
whether the prompt showed the repository's files and whether those are read-only) to
asks_first.log in its transcript directory, so tests can see the session resumed.
"""

import json
import os
import sys
import uuid
from pathlib import Path

from roles.agents import demo_agent

prompt = sys.stdin.read()
given = os.environ.get("CREWLINE_SESSION_ID")
session = given or uuid.uuid4().hex[:12]
plan = demo_agent.plan_for(prompt)
if "Answer from" not in prompt:
    plan["questions"] = ["Should acronyms stay upper case?"]
# Its own transcript directory: in the sandbox it can write nowhere else outside the worktree.
log = Path(os.environ["CREWLINE_TRANSCRIPT_DIR"]) / "asks_first.log"
with log.open("a") as out:
    turn = {"given": given, "session": session, "asked": bool(plan["questions"])}
    turn["cwd"] = os.getcwd()
    turn["tree_shown"] = "## The repository" in prompt and "\nREADME.md\n" in prompt
    turn["readme_writable"] = os.access("README.md", os.W_OK) if os.getuid() else None
    turn["readme_mode"] = oct(os.stat("README.md").st_mode & 0o777)
    out.write(json.dumps(turn))
    out.write("\n")
print("```json\n" + json.dumps(plan) + "\n```")
print(json.dumps({"session_id": session}))
