"""The handlers of the ``crewline`` commands, one ``cmd_<command>`` each (the parser in
:mod:`bot.cli` names them). Exit codes: 0 ok, 1 a check or operation failed, 2 usage or
configuration error."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import CrewlineConfig, Secrets, config_path, load_config, load_secrets
from bot.logs import configure_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.doctor import run_doctor

    checks = run_doctor(config_path(args.config))
    for check in checks:
        print(check.line())
    return EXIT_OK if all(check.ok for check in checks) else EXIT_FAILED


def _audit_db(args: argparse.Namespace) -> Path | None:
    db = Path(args.db) if args.db else load_config(config_path(args.config)).storage.path
    if not db.exists():
        print(f"no database at {db}: pass --db PATH or check storage.path", file=sys.stderr)
        return None
    return db


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from storage.audit import verify_chain
    from storage.errors import StorageError

    db = _audit_db(args)
    if db is None:
        return EXIT_USAGE
    try:
        report = verify_chain(db)
    except StorageError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    if report.ok:
        print(f"audit chain intact: {report.rows} rows verified in {db}")
        return EXIT_OK
    print(f"audit chain BROKEN at row {report.first_bad_id}: {report.reason} ({db})")
    return EXIT_FAILED


def cmd_audit_prune(args: argparse.Namespace) -> int:
    from bot.audit_prune import run_prune

    db = _audit_db(args)
    if db is None:
        return EXIT_USAGE
    return run_prune(db, args.before)


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return asyncio.run(run_demo(interactive=args.interactive, as_json=args.json))


def log_level(args: argparse.Namespace) -> int:
    return logging.DEBUG if args.verbose else logging.WARNING


def _configured(args: argparse.Namespace) -> tuple[CrewlineConfig, Secrets]:
    config, secrets = load_config(config_path(args.config)), load_secrets()
    # Now the worker and the tokens are known: JSON lines carry the one, never the others.
    log_format = args.log_format or config.observability.log_format
    configure_logging(
        log_level(args), log_format, secrets=secrets.all_values(), worker=config.worker_id
    )
    return config, secrets


def cmd_run(args: argparse.Namespace) -> int:
    from bot.serve import serve

    config, secrets = _configured(args)
    asyncio.run(serve(config, secrets, webhooks=True, auto_approve_plans=args.auto_approve_plans))
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from bot.serve import serve

    config, secrets = _configured(args)
    asyncio.run(serve(config, secrets, webhooks=False, auto_approve_plans=args.auto_approve_plans))
    return EXIT_OK


def cmd_decide(args: argparse.Namespace) -> int:
    from bot.app import build_runtime
    from bot.operator import operator_decide, operator_login
    from forge.client import ForgeError
    from roles.notify import EventLog

    config, secrets = _configured(args)
    feedback = str(getattr(args, "feedback", "") or "")
    if not args.approve and not feedback.strip():
        print("say what should change: --feedback must not be empty", file=sys.stderr)
        return EXIT_USAGE

    async def decide() -> tuple[bool, str]:
        runtime = await build_runtime(config, secrets, notifier=EventLog())
        try:
            decision = await operator_decide(
                runtime, args.project, args.iid, approve=args.approve, feedback=feedback,
                login=operator_login(),
            )  # fmt: skip
        except ForgeError as error:
            return False, f"GitLab refused or did not answer: {error}"
        finally:
            await runtime.close()
        return decision.applied, decision.message

    applied, message = asyncio.run(decide())
    print(message, file=sys.stdout if applied else sys.stderr)
    return EXIT_OK if applied else EXIT_FAILED


def cmd_labels_sync(args: argparse.Namespace) -> int:
    from bot.app import build_runtime
    from forge.labels import sync_labels
    from roles.notify import EventLog

    config, secrets = _configured(args)

    async def sync() -> None:
        runtime = await build_runtime(config, secrets, notifier=EventLog())
        try:
            for project in config.projects:
                done = await sync_labels(runtime.services.gateway, project.path)
                control = await runtime.services.fleet.control.ensure(project.path)
                print(
                    f"{project.path}: {len(done.created)} created, {len(done.updated)} updated, "
                    f"{len(done.unchanged)} unchanged; control issue #{control.iid}"
                )
        finally:
            await runtime.close()

    asyncio.run(sync())
    return EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    from bot.fleet_commands import run_pause

    config, secrets = _configured(args)
    return run_pause(config, secrets, args.project, paused=args.paused)


def cmd_discord_sync(args: argparse.Namespace) -> int:
    from bot.discord.run import SYNC_ERRORS, discord_token, sync

    config, secrets = _configured(args)
    token = discord_token(secrets, config.discord, channels=False)
    try:
        names = asyncio.run(sync(config.discord, token))
    except SYNC_ERRORS as error:
        print(f"cannot sync the commands: Discord did not answer ({error})", file=sys.stderr)
        return EXIT_FAILED
    print(f"synced {len(names)} commands to guild {config.discord.guild_id}: {', '.join(names)}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from bot.app import Runtime, build_runtime
    from bot.status import board, flaky_text, fleet_lines
    from roles.notify import EventLog
    from roles.stuck import stuck_items

    config, secrets = _configured(args)

    async def show_stuck(runtime: Runtime) -> None:
        schedule = config.schedule
        items = await stuck_items(
            runtime.services,
            stuck_after=schedule.stuck_after_seconds,
            by_state=schedule.stuck_after_by_state,
        )
        if args.json:
            print(json.dumps([asdict(item) for item in items], indent=2))
            return
        for item in items:
            print(f"{item.project}#{item.iid:<5} {item.state:<15} {item.title[:50]}")
            print(f"    {item.reason}; since {item.since} ({item.hours:.1f} h)")
            print(f"    what to do: {item.action}")
        if not items:
            print("nothing is stuck")

    async def show() -> None:
        runtime = await build_runtime(config, secrets, notifier=EventLog())
        try:
            if args.stuck:
                await show_stuck(runtime)
                return
            result = await board(runtime)
        finally:
            await runtime.close()
        if args.json:
            print(json.dumps(asdict(result), indent=2))
            return
        print("  ".join(f"{state} {count}" for state, count in result.counts.items() if count))
        for line in result.rate:
            print(line)
        for item in result.items:
            line = f"{item.project}#{item.iid:<5} {item.state:<15} {item.title[:50]}"
            print(f"{line}  {item.detail}" if item.detail else line)
        if result.fleet is not None:
            print("\n".join(fleet_lines(result.fleet)))
        if result.flaky and result.flaky.rows:
            print(flaky_text(result.flaky))

    asyncio.run(show())
    return EXIT_OK


def cmd_sim_serve(args: argparse.Namespace) -> int:
    from sim.core.app import serve_forever
    from sim.core.base import SimConfig

    config = SimConfig(
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        tier=args.tier,
        seed=args.seed,
        root_token=args.root_token,
        bot_token=args.bot_token,
        maintainer_token=args.maintainer_token,
    )
    try:
        asyncio.run(serve_forever(config))
    except OSError as error:
        print(f"cannot serve on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
