"""Assembles the simulator: the store, the route modules, seeding, and the server.

A route module exposes ``SCHEMA`` (its DDL, may be empty) and ``setup(app, sim)``, which
adds its routes and any startup/cleanup hooks; it may also expose ``middleware``.
Modules find shared services through typed ``web.AppKey``s set in their ``setup``.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from aiohttp import web

from sim.core.base import (
    DEVELOPER,
    MAINTAINER,
    SIM_KEY,
    Sim,
    SimConfig,
    auth_middleware,
    create_user,
)
from sim.core.store import SimStore

# Order matters only for middlewares: a module listed earlier wraps those after it.
# Each slot is owned by one area; replace a slot's comment with that area's module names.
ROUTE_MODULES: tuple[str, ...] = (
    "sim.core.faults",
    "sim.core.base",
    "sim.core.accounts",
    "sim.issues.labels",
    "sim.issues.notes",
    "sim.issues.label_events",
    "sim.issues.api",
    "sim.issues.award_emoji",
    "sim.issues.discussions",
    "sim.issues.links",
    "sim.core.webhooks",
    "sim.git.repository",
    "sim.git.protected_branches",
    "sim.git.branches",
    "sim.git.commits",
    "sim.git.http",
    "sim.merge_requests.api",
    "sim.pipelines.api",
    "sim.pipelines.artifacts",
)

ROOT, BOT, MAINTAINER_USER = "root", "crewline-bot", "maintainer"


def _modules() -> list[ModuleType]:
    return [importlib.import_module(name) for name in ROUTE_MODULES]


async def build_app(config: SimConfig) -> tuple[web.Application, Sim]:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = await SimStore.open(config.state_dir / "sim.sqlite3")
    sim = Sim(config=config, store=store)
    modules = _modules()
    for module in modules:
        schema = getattr(module, "SCHEMA", "")
        if schema:
            await store.ensure_schema(schema)
    middlewares = [m.middleware for m in modules if hasattr(m, "middleware")]
    app = web.Application(
        middlewares=[*middlewares, auth_middleware], client_max_size=64 * 1024 * 1024
    )
    app[SIM_KEY] = sim
    for module in modules:
        module.setup(app, sim)

    async def close_store(_: web.Application) -> None:
        await sim.events.drain()
        await store.close()

    app.on_cleanup.append(close_store)
    await seed_users(sim)
    return app, sim


async def seed_users(sim: Sim) -> dict[str, int]:
    """The three users every simulator has; tokens come from the configuration."""
    cfg = sim.config
    return {
        ROOT: await create_user(sim, ROOT, cfg.root_token, admin=True, name="Administrator"),
        BOT: await create_user(sim, BOT, cfg.bot_token, name="crewline bot"),
        MAINTAINER_USER: await create_user(
            sim, MAINTAINER_USER, cfg.maintainer_token, name="Maintainer"
        ),
    }


async def seed(sim: Sim) -> None:
    """Apply ``config.seed``: ``demo`` creates ``demo/app`` (bot Developer, maintainer Maintainer)."""
    if sim.config.seed is None:
        return
    if sim.config.seed != "demo":
        raise ValueError(f"unknown seed {sim.config.seed!r}: expected 'demo'")
    seed_module = importlib.import_module(
        "sim.core.seed"
    )  # the demo project lives with the git layer
    await seed_module.seed_demo(sim, bot_level=DEVELOPER, maintainer_level=MAINTAINER)


class RunningSim:
    """A simulator listening on a real socket, in its own thread and event loop, so that
    synchronous clients (python-gitlab, git) can talk to it from anywhere."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.sim: Sim | None = None

    @property
    def api_url(self) -> str:
        return self.base_url

    def start(self, timeout: float = 30.0) -> RunningSim:
        self._thread = threading.Thread(target=self._serve, name="gitlab-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the GitLab simulator did not start in time")
        if self._error is not None:
            raise RuntimeError(
                f"the GitLab simulator failed to start: {self._error}"
            ) from self._error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._stop())
        loop.close()

    async def _start(self) -> None:
        self.sim, self._runner = await start_server(self.config)
        self.base_url = self.sim.base_url

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    def call(self, coro_factory: object) -> object:
        """Run a coroutine on the simulator's loop from another thread (tests use this
        for direct state access that the API does not offer)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_factory, self._loop).result(timeout=30)  # type: ignore[arg-type]


async def start_server(config: SimConfig) -> tuple[Sim, web.AppRunner]:
    app, sim = await build_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()  # closes the store too, so a failed start leaves nothing running
        raise
    port = _bound_port(runner)
    sim.base_url = f"http://{config.host}:{port}"
    await seed(sim)
    return sim, runner


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    raise RuntimeError("the simulator is not listening on any address")


@contextmanager
def running_sim(config: SimConfig) -> Iterator[RunningSim]:
    running = RunningSim(config).start()
    try:
        yield running
    finally:
        running.stop()


async def serve_forever(config: SimConfig) -> None:
    """``crewline sim serve``: start, print the base URL, run until cancelled or sent
    SIGTERM. Both stop it the same way: the running CI jobs (each in a process group of its
    own) are killed as the app shuts down; dying at once on SIGTERM left them running,
    writing into a state directory its owner was already removing."""
    sim, runner = await start_server(config)
    serving = asyncio.current_task()
    if serving is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, serving.cancel)
    print(f"GitLab simulator ready at {sim.base_url} (API {sim.base_url}/api/v4)", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass
    finally:
        await runner.cleanup()
