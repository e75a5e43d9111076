"""The demo agent, reporting a cost for every turn (as claude -p or codex would)."""

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
report["crewline_usage"] = {"tokens_in": 12000, "tokens_out": 3000, "cost_usd": 2.5}
print("\n".join(lines[:-1]))
print(json.dumps(report))
sys.exit(code)
