"""The ``crewline`` command: its parser and entry point; each command's handler is in
:mod:`bot.commands`. Exit codes: 0 ok, 1 a check or operation failed, 2 usage or
configuration error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    cmd_audit_prune,
    cmd_audit_verify,
    cmd_decide,
    cmd_demo,
    cmd_discord_sync,
    cmd_doctor,
    cmd_labels_sync,
    cmd_pause,
    cmd_run,
    cmd_sim_serve,
    cmd_status,
    cmd_worker,
    log_level,
)
from bot.config import ConfigError
from bot.logs import configure_logging

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(log_level(args), args.log_format or "text")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(args)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED


def _options(default: object) -> argparse.ArgumentParser:
    """--config and -v, taken before or after the command. Below the top level their default
    is SUPPRESS, so a subcommand that does not repeat them keeps the top level's value."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="configuration file (default: $CREWLINE_CONFIG, else ./crewline.toml)",
    )
    options.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging"
    )
    options.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=default,
        help="text, or json: one object per line (default: observability.log_format, else text)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crewline",
        description=(
            "Coordinate AI coding agents on GitLab. Humans decide the plan and merge gates in "
            "GitLab (a thumbs-up on the plan note, Approve on the merge request), in Discord, "
            "or here with `crewline approve` / `crewline request-changes`."
        ),
        parents=[_options(None)],
    )
    parser.set_defaults(verbose=False, log_format=None)
    common = _options(argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    doctor = commands.add_parser(
        "doctor", parents=[common], help="check configuration, database, git and agents"
    )
    doctor.set_defaults(handler=cmd_doctor)

    audit_commands = _group(commands, "audit", common, "the audit trail")
    verify = audit_commands.add_parser(
        "verify", parents=[common], help="verify the audit hash chain"
    )
    verify.add_argument(
        "--db", metavar="PATH", help="database file (default: storage.path of the config)"
    )
    verify.set_defaults(handler=cmd_audit_verify)
    prune = audit_commands.add_parser(
        "prune",
        parents=[common],
        help="delete audit rows older than a date; the rest of the chain stays verifiable",
    )
    prune.add_argument(
        "--before",
        required=True,
        metavar="DATE",
        help="ISO date or time, UTC unless it names a zone (e.g. 2026-09-01)",
    )
    prune.add_argument(
        "--db", metavar="PATH", help="database file (default: storage.path of the config)"
    )
    prune.set_defaults(handler=cmd_audit_prune)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the whole workflow offline on the embedded simulator (no config needed)",
    )
    demo.add_argument("--interactive", action="store_true", help="ask before approving each plan")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(handler=cmd_demo)

    run = commands.add_parser(
        "run", parents=[common], help="run the engine, scheduler and webhook receiver"
    )
    run.set_defaults(handler=cmd_run)
    worker = commands.add_parser(
        "worker", parents=[common], help="run the engine only (an extra host)"
    )
    worker.set_defaults(handler=cmd_worker)
    for parser_ in (run, worker):
        parser_.add_argument(
            "--auto-approve-plans",
            action="store_true",
            help="approve every plan as it is posted, in this host's name (no human plan gate)",
        )

    status = commands.add_parser(
        "status", parents=[common], help="the board: states, running work, what waits and why"
    )
    status.add_argument("--json", action="store_true", help="print the board as JSON")
    status.add_argument(
        "--stuck",
        action="store_true",
        help="only stuck work: no transition for too long, blocked, failed; with what to do",
    )
    status.set_defaults(handler=cmd_status)

    for name, what in (("approve", "approve"), ("request-changes", "request changes to")):
        decide = commands.add_parser(
            name,
            parents=[common],
            help=f"{what} the plan or merge an issue waits for, as this host's operator",
        )
        decide.add_argument("project", help="the project's path, e.g. group/app")
        decide.add_argument("iid", type=int, help="the issue's number in the project")
        if name == "request-changes":
            decide.add_argument("--feedback", required=True, help="what should change")
        decide.set_defaults(handler=cmd_decide, approve=name == "approve")

    for name, what in (("pause", "stop every host claiming new work"), ("resume", "resume")):
        switch = commands.add_parser(
            name, parents=[common], help=f"{what}, on one project or all (the control issues)"
        )
        switch.add_argument("project", nargs="?", help="one project's path (default: all)")
        switch.set_defaults(handler=cmd_pause, paused=name == "pause")

    label_commands = _group(commands, "labels", common, "GitLab workflow labels")
    sync = label_commands.add_parser(
        "sync",
        parents=[common],
        help="create or update every workflow label and the control issue (idempotent)",
    )
    sync.set_defaults(handler=cmd_labels_sync)

    discord_commands = _group(commands, "discord", common, "the Discord surface")
    discord_sync = discord_commands.add_parser(
        "sync", parents=[common], help="register the slash commands in discord.guild_id"
    )
    discord_sync.set_defaults(handler=cmd_discord_sync)

    sim_commands = _group(commands, "sim", common, "the GitLab simulator")
    serve = sim_commands.add_parser(
        "serve", parents=[common], help="serve the GitLab API v4 simulator"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8929)
    serve.add_argument("--state-dir", required=True, type=Path, metavar="DIR")
    serve.add_argument("--tier", choices=["premium", "free"], default="premium")
    serve.add_argument("--seed", choices=["demo"], default=None)
    serve.add_argument("--root-token", default="sim-root-token")
    serve.add_argument("--bot-token", default="sim-bot-token")
    serve.add_argument("--maintainer-token", default="sim-maintainer-token")
    serve.set_defaults(handler=cmd_sim_serve)
    return parser


def _group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    common: argparse.ArgumentParser,
    what: str,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command that only groups others (``crewline labels sync``): alone it prints its
    usage. Returns where its subcommands go."""
    group = commands.add_parser(name, parents=[common], help=what)
    group.set_defaults(handler=lambda _: _usage(group))
    return group.add_subparsers(title=f"{name} commands", metavar="COMMAND")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
