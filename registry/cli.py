"""The command line, `thread-registry` (or `python -m registry`).

thread-registry demo [--url URL] [--async]       play a conversation, print the live chains
thread-registry threads --namespace NS ...       the live threads (tree, or --json)
thread-registry stats --namespace NS [--json]    counts, memory, server facts, warnings
thread-registry check --namespace NS [--repair]  verify (and mend) a namespace
thread-registry lookup ID / cleanup ID           one thread
thread-registry gc / clear --yes                 reclaim expired mappings / remove a namespace
thread-registry pipeline --url URL [--chaos]     the reference pipeline on Redis Streams

Errors are one line on stderr (exit 2), never a traceback, and never show a password.
A subcommand is one entry of COMMANDS: its name, help, how it adds its arguments, and
how it runs (`run(args, target) -> exit status`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from . import cli_commands as c
from .cli_connect import Target, UsageError, describe_error
from .cli_progress import Interrupted

PROG = "thread-registry"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Target | None], int]
    needs_server: bool = True  # demo runs on the embedded backend without one
    # False: the command reads its own connection options (Target is not made for it)
    common_options: bool = True


COMMANDS: list[Command] = [
    Command("demo", "play a short conversation and print the live chains", c.add_demo, c.run_demo, False),
    Command("threads", "list the live threads of a namespace", c.add_threads, c.run_threads),
    Command("stats", "counts, memory, server facts and warnings", c.add_stats, c.run_stats),
    Command("check", "verify a namespace's invariants (--repair: mend them)", c.add_check, c.run_check),
    Command("lookup", "the chain of one thread id", c.add_thread_id, c.run_lookup),
    Command("cleanup", "remove one thread (both directions)", c.add_thread_id, c.run_cleanup),
    Command("gc", "reclaim expired mappings of a namespace now", c.add_gc, c.run_gc),
    Command("clear", "remove a namespace (asks for --yes)", c.add_clear, c.run_clear),
    Command(
        "pipeline",
        "run the reference pipeline on Redis Streams",
        c.add_pipeline,
        c.run_pipeline,
        False,
        False,
    ),
]


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog=PROG, description="Operate a thread registry on Redis.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.help))
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = next(cmd for cmd in COMMANDS if cmd.name == args.command)
    target: Target | None = None
    prefix = f"{PROG} {command.name}"
    try:
        if command.common_options:
            target = Target.from_args(args, required=command.needs_server)
        _quiet_secrets(target)
        return command.run(args, target)
    except BrokenPipeError:  # `thread-registry threads | head`: the reader is gone, not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        return 0
    except (Interrupted, KeyboardInterrupt) as exc:
        print(f"{prefix}: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"{prefix}: {describe_error(exc, target)}", file=sys.stderr)
        return 2


class _Redact(logging.Filter):
    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.target.redact(record.getMessage())
        record.args = None
        return True


def _quiet_secrets(target: Target | None) -> None:
    """Log lines the library writes during a command hide the command's secrets too."""
    if target is not None and target.secrets:
        logging.getLogger("registry").addFilter(_Redact(target))


if __name__ == "__main__":
    sys.exit(main())
