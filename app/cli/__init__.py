"""The `lineproof` command: every core capability headless, plus `gui`; one module per command group."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

from app import __version__
from app.cli import bench, data, governance, models, monitoring, packet, project, validation
from app.core.errors import LineproofError

# The benchmark's measuring process inside a frozen bundle; internal, so it is not on the parser (nor in --help).
BENCH_CHILD = "_bench-child"
RUNTIME_CHECK = "_runtime-check"  # the model-loading probe of an import, likewise
VARIANT_CHILD = "_variant-child"  # the converter of `lineproof variant`, likewise


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand, in the order a user meets them."""
    parser = argparse.ArgumentParser(
        prog="lineproof", description="Trust machine-learning models on the production line. "
        "With no command, opens the last project (or the sample) in the desktop app.")
    parser.add_argument("--version", action="version", version=f"lineproof {__version__}")
    parser.add_argument("--trust", dest="anchor", action="append", metavar="CERT.pem",
                        help="also trust this site CA or pinned certificate for this run (besides this PC's anchors)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (project, data, monitoring, models, bench, governance, validation, packet):
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # pyHanko imports cryptography's DSA support, which warns on every run; Lineproof never uses DSA.
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    if argv[:1] == [BENCH_CHILD]:
        return bench.run_child()
    if argv[:1] == [RUNTIME_CHECK]:
        from app.core.models.runtime_probe import main as probe

        return probe()
    if argv[:1] == [VARIANT_CHILD] and len(argv) == 2:
        from app.core.models.variant_child import main as convert

        return convert(argv[1])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    previous = _stop_on_sigterm()
    anchors: list[str] = []
    try:
        anchors = list(getattr(args, "anchor", None) or []) + list(getattr(args, "trust", None) or [])
        if anchors:
            from app.core.governance.trust import use_extra_anchors

            use_extra_anchors(anchors)
        return args.func(args)
    except LineproofError as exc:
        print(f"lineproof {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lineproof ... | head`: the reader has all it wanted (before OSError: a subclass)
        # Point stdout at /dev/null so the interpreter's final flush does not raise the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file the command was given or needs: name it, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"lineproof {args.command}: error: {where}{exc.strerror or exc}.\nCheck the path and its "
              "permissions; the command stopped before finishing.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; nothing was changed.", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if anchors:  # for this run only: an embedding process (the tests, a script) keeps its own trust
            from app.core.governance.trust import use_extra_anchors

            use_extra_anchors([])


def _stop_on_sigterm() -> object:
    """SIGTERM (a service manager, `kill`) unwinds like Ctrl-C, so that child processes are stopped and
    transactions rolled back; returns the previous handler (None off the main thread)."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (tests, embedding)
        return None
