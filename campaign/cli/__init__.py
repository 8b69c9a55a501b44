"""The command line: parse -> config -> one set of resources -> one service call -> exit code.

There is exactly one ``asyncio.run`` in the product, here. Errors print as one line on stderr
(the cause chain too with ``-v``) and map to the exit codes of the interface:
0 success, 1 some recipients did not make it, 2 usage/config/input error, 3 interrupted,
4 campaign held by another process. The grammar is :mod:`.parser`'s, what each subcommand does
:mod:`.commands`'.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Coroutine, Sequence
from typing import Any

from campaign import descriptors, errors, secrets
from campaign.cli import stacks
from campaign.cli.commands import Command
from campaign.cli.parser import build_parser, parse_args
from campaign.config import Config, load_config

__all__ = ["build_parser", "main", "parse_args"]


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    # Every log line, any library's included, goes through the one redaction of secrets.
    handler.setFormatter(
        secrets.RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])
    # Its debug lines carry SQL parameters, that is recipient data: not for a log.
    logging.getLogger("aiosqlite").setLevel(max(level, logging.INFO))


def _cause(exc: BaseException) -> BaseException | None:
    """The exception ``exc`` came from, unless it was raised ``from None`` on purpose."""
    if exc.__cause__ is not None:
        return exc.__cause__
    return None if exc.__suppress_context__ else exc.__context__


def _one_line(text: str) -> str:
    """``text`` on one line: a driver's message of several lines (psycopg's hints, a
    deadlock's detail) joined."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _describe(exc: BaseException, verbose: bool) -> str:
    text = _one_line(str(exc)) or type(exc).__name__
    if verbose:
        cause = _cause(exc)
        while cause is not None:
            text += f"\n  caused by {type(cause).__name__}: {cause}"
            cause = _cause(cause)
    return text


def _error(text: str) -> None:
    """Print an error for the user, with any secret value masked."""
    print(f"campaign: error: {secrets.redact(text)}", file=sys.stderr)


async def _supervised(command: Coroutine[Any, Any, int], verbose: bool) -> int:
    """Run ``command`` with the loop's last-resort error handler saying what went wrong in one
    log line (asyncio's own prints a traceback of a hundred lines, for instance for a task
    whose database connection the server closed): the command's own error still says why it
    stopped, in its one line."""
    loop = asyncio.get_running_loop()

    def report(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        what = context.get("message", "unexpected error")
        if exc is not None:
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            what = f"{what}: {type(exc).__name__}: {first}".rstrip(": ")
        logging.getLogger("campaign").warning(
            secrets.redact(what), exc_info=exc if verbose else None
        )

    loop.set_exception_handler(report)
    stacks.install(loop)
    return await command


def main(argv: Sequence[str] | None = None) -> int:
    descriptors.reserve()  # before the first connection: see the module
    args = parse_args(argv)
    _configure_logging(args.verbose)
    handler: Command = args.handler
    config: Config | None = None
    try:
        if args.needs_config:  # commands that never call Sinch need no credentials
            credentials = getattr(args, "needs_sinch", True)
            config = load_config(args.config, database_url=args.database, credentials=credentials)
        return asyncio.run(_supervised(handler(args, config), args.verbose > 0))
    except errors.StoreError as exc:
        # Unreachable, locked, full or not migrated: the store's one line names the database
        # (password masked) and what the driver said; -v adds the whole story.
        text = str(exc)
        if args.verbose:
            text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
        _error(text)
        return exc.exit_code
    except errors.CampaignError as exc:
        _error(_describe(exc, args.verbose > 0))
        return exc.exit_code
    except KeyboardInterrupt:
        print("campaign: interrupted", file=sys.stderr)
        return errors.EXIT_INTERRUPTED
    except Exception as exc:  # the supervision point of last resort: no secret in a crash
        if args.verbose:
            _error("internal error\n" + "".join(traceback.format_exception(exc)).rstrip())
        else:
            _error(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (-v shows where)")
        return errors.EXIT_FAILED
