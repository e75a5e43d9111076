"""The demo agent, except that it never finishes implementing (a stuck or killed run)."""

import os
import sys
import time

from roles.agents import demo_agent

if os.environ.get("CREWLINE_TASK_KIND") == "implement":
    time.sleep(3600)
sys.exit(demo_agent.main())
