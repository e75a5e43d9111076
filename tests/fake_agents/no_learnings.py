"""The demo agent, except that it never reports what it learned (not even when asked)."""

import contextlib
import io
import re
import sys

from roles.agents import demo_agent

captured = io.StringIO()
with contextlib.redirect_stdout(captured):
    code = demo_agent.main()
print(re.sub(r"```crewline-learnings\n.*?\n```\n", "", captured.getvalue(), flags=re.S), end="")
sys.exit(code)
