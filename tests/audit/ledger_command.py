"""`ledger` with the auditors' commands, for as long as ledger.cli does not register them."""

from __future__ import annotations

import argparse
import sys

from ledger import audit, cli


def _subcommands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise LookupError("no sub-commands")


def build_parser() -> argparse.ArgumentParser:
    parser = _build_parser()
    commands = _subcommands(parser)
    if "verify" not in commands.choices:
        audit.add_commands(commands)
        audit.add_projection_commands(_subcommands(commands.choices["projections"]))
    return parser


_build_parser = cli.build_parser
cli.build_parser = build_parser

if __name__ == "__main__":
    sys.exit(cli.main())
