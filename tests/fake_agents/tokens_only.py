"""The demo agent, reporting tokens but no dollars for every turn (as codex and gemini do)."""

import contextlib
import io
import json
import sys

from roles.agents import demo_agent

captured = io.StringIO()
with contextlib.redirect_stdout(captured):
    code = demo_agent.main()
lines = captured.getvalue().rstrip("\n").splitlines()
report = json.loads(lines[-1])
report["crewline_usage"] = {"tokens_in": 200000, "tokens_out": 50000}
print("\n".join(lines[:-1]))
print(json.dumps(report))
sys.exit(code)
