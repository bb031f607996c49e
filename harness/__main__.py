"""The harness command line: `python -m harness COMMAND ...` (also installed as `codec-harness`).

    python -m harness render REPORT.json [--html OUT] [--markdown OUT]
    python -m harness compare OLD.json NEW.json [--format markdown|text] [--output OUT] [--fail-on-worse]
    python -m harness reproduce REPORT.json [--clips ...]   # 0 bit-exact, 1 differs, 3 inputs differ
    python -m harness evolve-report RUN_DIR [-o FILE]        # an evolution run's progress page (HTML)

Each command lives in its own module, which provides `register(subparsers)`: it adds its parser
with `subparsers.add_parser(...)` and sets `func` (a function taking the parsed arguments and
returning an exit status) with `parser.set_defaults(func=...)`. To add a command, write that
function and add the module to `COMMAND_MODULES`.

Exit status: 0 done, 1 a command's own "no" (e.g. compare --fail-on-worse found a regression),
2 an error (a `HarnessError`: one line on stderr) or bad usage (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import HarnessError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "harness.render",
    "harness.compare",
    "harness.adoption",
    "harness.gate",
    "harness.evolve.cli",
    "harness.evolve.page",
    "harness.reproduce",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="Codec harness tools: render and compare the reports of `pytest benchmarks/`, "
        "adopt candidates into the ledger, run the pull-request gate.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (HarnessError -> one line on stderr, status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HarnessError as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
