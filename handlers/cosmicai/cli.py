"""The `cosmicai` console command: one sub-command per module in `cosmicai.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from cosmicai import __version__
from cosmicai.commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    """Parser with every registered sub-command (heavy imports stay inside each command)."""
    parser = argparse.ArgumentParser(prog="cosmicai", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cosmicai {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"cosmicai.commands.{name}").register(sub)
    return parser


# The `cli` extra's packages: the commands that draw import them when they run.
CLI_EXTRA = ("rich",)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, dispatch to the command's `run(args)`, return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ModuleNotFoundError as exc:
        # Commands that only compute (convert-checkpoint in the image build) run without the extra.
        if exc.name not in CLI_EXTRA:
            raise
        print(
            f"cosmicai {args.command}: needs {exc.name}, from the `cli` extra: pip install 'cosmicai[cli]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
