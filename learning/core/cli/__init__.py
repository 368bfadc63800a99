"""Command line of the learning core: ``python -m learning <command> [--json]``.

Each command module registers its sub-commands with :func:`command`. Errors raised as
:class:`CliError` (or ``BundleError``/``ValueError`` from the core) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

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


class Progress:
    """A tqdm bar on stderr for a command's long loop (stdout stays clean for ``--json``).

    Shown when stderr is a terminal, unless ``--no-progress``; ``tqdm(disable=None)`` turns it
    off in pipes and logs, so error output stays one line there.
    """

    def __init__(self, args: argparse.Namespace, *, total: int, desc: str, unit: str) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True,
                         disable=True if getattr(args, "no_progress", False) else None)

    def set(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def step(self, what: str | None = None) -> None:
        if what:
            self._bar.set_postfix_str(what)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def progress_iter(args: argparse.Namespace, items: Sequence[T], *, desc: str,
                  unit: str) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (see :class:`Progress`)."""
    bar = Progress(args, total=len(items), desc=desc, unit=unit)
    try:
        for item in items:
            yield item
            bar.step()
    finally:
        bar.close()


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
        p.add_argument("--no-progress", action="store_true",
                       help="no progress bar (there is none when stderr is not a terminal)")
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
