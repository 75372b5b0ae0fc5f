"""Command-line interface: thin subcommands, each calling one library function."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noisemod", description=__doc__)
    parser.add_subparsers(dest="command", required=True)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return 0
