"""A fake PM agent whose first plan has an acceptance check that is not valid shell and an
owned glob that matches no file; it fixes the check when told why. Each prompt is appended to
bad_shell_plan.log in its transcript directory."""

import json
import os
import sys
from pathlib import Path

prompt = sys.stdin.read()
# Its own transcript directory: in the sandbox it can write nowhere else outside the worktree.
log = Path(os.environ["CREWLINE_TRANSCRIPT_DIR"]) / "bad_shell_plan.log"
with log.open("a") as out:
    out.write(json.dumps({"prompt": prompt, "session": os.environ.get("CREWLINE_SESSION_ID")}))
    out.write("\n")
check = 'test -f README.md && echo "ok' if "not valid shell" not in prompt else "test -f README.md"
plan = {
    "summary": "Document the app.",
    "steps": ["Write docs/usage.md"],
    "acceptance": [check],
    "owned_paths": ["docs/usage.md", "lib/**/*.rs", "README*"],
    "risks": [],
    "questions": [],
}
print("```json\n" + json.dumps(plan) + "\n```")
