"""Command line of the learning core: ``python -m learning <command> [--json]``.

Each command module registers its sub-commands with :func:`command`. Errors raised as
:class:`CliError` (or ``BundleError``/``ValueError`` from the core) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], dict[str, Any]]
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler, str]] = {}


class CliError(Exception):
    """A bad input reported as one clear line."""


def command(name: str, help: str) -> Callable[[Callable[[argparse.ArgumentParser], None]],
                                              Callable[[argparse.ArgumentParser], None]]:
    """Register ``configure(parser)``; the module must also define ``run_<name>``."""

    def deco(configure: Callable[[argparse.ArgumentParser], None]) -> Callable[
            [argparse.ArgumentParser], None]:
        mod = sys.modules[configure.__module__]
        handler = getattr(mod, "run_" + name.replace("-", "_"))
        _COMMANDS[name] = (configure, handler, help)
        return configure

    return deco


def _load_commands() -> None:
    import importlib
    import pkgutil

    from learning.core import cli as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"learning.core.cli.{info.name}")


def main(argv: list[str] | None = None) -> int:
    _load_commands()
    parser = argparse.ArgumentParser(prog="python -m learning", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _handler, help_text) in sorted(_COMMANDS.items()):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print results as JSON")
        configure(p)
    args = parser.parse_args(argv)
    _configure, handler, _help = _COMMANDS[args.command]
    from learning.core.bundle import BundleError

    try:
        result = handler(args)
    except (CliError, BundleError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0
