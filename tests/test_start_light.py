"""`crewline run` with Discord off starts without discord.py (about 10 MB of an idle host),
aiohttp (about 10 MB more: its webhook listener is served by ``forge.http_serve`` on h11),
rich (2.4 MB: it prints through ``bot.plain_console``) or the simulator's modules, and with webhooks and observability off without any listener code:
checked in the real process, through a sitecustomize that records its modules as it exits."""

from __future__ import annotations

import json
from pathlib import Path

from sim.core.app import RunningSim
from tests.support.cli import TOKEN_ENV, WORKER, background, ends_cleanly, run_cli, write_config
from tests.test_cli_engine import PROJECT

RECORD_MODULES = """\
import atexit, json, os, sys

def _record() -> None:
    with open(os.environ["CREWLINE_TEST_MODULES_OUT"], "w", encoding="utf-8") as out:
        json.dump(sorted(sys.modules), out)

atexit.register(_record)
"""


def modules_of_run(tmp_path: Path, sim: RunningSim, *, webhook: bool) -> set[str]:
    """The modules a real `crewline run` (Discord and observability off) had at its end."""
    config = write_config(tmp_path / "crewline.toml", sim, poll=1, webhook=webhook)
    run_cli(config, "labels", "sync")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RECORD_MODULES, encoding="utf-8")
    out = tmp_path / "modules.json"
    env = {
        **TOKEN_ENV,
        "CREWLINE_WEBHOOK_SECRET": "a-webhook-secret-for-the-tests",
        "PYTHONPATH": str(site),
        "CREWLINE_TEST_MODULES_OUT": str(out),
    }
    with background(config, "run", env=env) as crew:
        crew.wait_for_line(rf"crewline {WORKER}: working on {PROJECT}")
        if webhook:
            crew.wait_for_line(r"webhooks: listening at")
        ends_cleanly(crew)
    return set(json.loads(out.read_text(encoding="utf-8")))


def test_run_with_discord_off_never_imports_discord_py_or_aiohttp(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    modules = modules_of_run(tmp_path, demo_sim, webhook=True)
    assert "bot.serve" in modules and "forge.webhooks.receiver" in modules  # it did run
    assert "h11" in modules  # the webhook listener served
    assert not {name for name in modules if name == "discord" or name.startswith("discord.")}
    assert not {name for name in modules if name == "aiohttp" or name.startswith("aiohttp.")}
    assert not {name for name in modules if name == "rich" or name.startswith("rich.")}
    assert not {name for name in modules if name.startswith("sim")}


def test_run_without_webhooks_or_observability_never_imports_a_listener(
    tmp_path: Path, demo_sim: RunningSim
) -> None:
    modules = modules_of_run(tmp_path, demo_sim, webhook=False)
    assert "bot.serve" in modules and "roles.engine.loop" in modules  # it did run
    assert not {name for name in modules if name == "aiohttp" or name.startswith("aiohttp.")}
    assert "forge.webhooks.receiver" not in modules and "bot.observe" not in modules
    assert "forge.http_serve" not in modules and "h11" not in modules
    assert "xml.etree.ElementTree" not in modules  # JUnit reports are parsed on first use
