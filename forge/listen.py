"""Serve an aiohttp app on a host and port, with an error that says what to change."""

from __future__ import annotations

from aiohttp import web


async def listen(
    app: web.Application, host: str, port: int, *, serving: str, setting: str
) -> tuple[web.AppRunner, str]:
    """Start ``app``; the runner (to clean up) and the base URL actually bound (port 0 picks
    a free one). ``serving`` says what for and ``setting`` which section's port to change,
    for the message when the port cannot be had."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(
            exc.errno,
            f"cannot {serving} on {host}:{port}: {exc.strerror}; free the port or set "
            f"another {setting} port",
        ) from exc
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}"
