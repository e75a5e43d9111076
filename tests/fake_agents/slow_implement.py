"""The demo agent, taking a few seconds to implement (so its issue stays dev-running)."""

import os
import sys
import time

from roles.agents import demo_agent

if os.environ.get("CREWLINE_TASK_KIND") == "implement":
    time.sleep(2)
sys.exit(demo_agent.main())
