"""Views, APIs and consumers look objects up through their app's ``access.py``, never the ORM.

    .venv/bin/python scripts/check_access.py [PATH ...]

Scans the views, APIs, consumers and routing modules of the apps (or the files and folders
given) and prints ``file:line: message`` for each lookup of one object written in the view:
``get_object_or_404``/``get_list_or_404``, ``.get(`` on a queryset (``Model.objects...get(...)``
or any ``.get(<key>=...)``), and ``Model.objects.filter(<key>=...)...first()`` or ``.last()``,
where a key is pk, id, slug, number, ``*_id`` or ``*__pk/id/slug``. A line that has a reason to
be exempt carries ``# access: <reason>``. Exits 1 when anything is found. Standard library only.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

APPS = ("annotation", "learning", "mapping", "croplayer_site")
TARGET = re.compile(
    r"(^|/)(\w*_)?(views|apis|consumers|routing)\.py$|(^|/)(views|apis)/[^/]+\.py$"
)
KEYS = re.compile(r"^(pk|id|slug|number|\w+_id|\w+__(pk|id|slug))$")
PRAGMA = re.compile(r"#\s*access:\s*\S")
SHORTCUTS = {"get_object_or_404", "get_list_or_404"}


def _chain(node: ast.expr) -> Iterator[ast.expr]:
    """The links of ``a.b(...).c(...)``, outermost first."""
    while isinstance(node, (ast.Call, ast.Attribute)):
        yield node
        node = node.func if isinstance(node, ast.Call) else node.value


def _has_objects(node: ast.expr) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "objects" for n in _chain(node))


def _keyed(call: ast.Call) -> bool:
    return any(k.arg is not None and KEYS.match(k.arg) for k in call.keywords)


def _message(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name) and f.id in SHORTCUTS:
        return f"{f.id}: use the app's access.py gate"
    if not isinstance(f, ast.Attribute):
        return None
    if f.attr == "get" and (_has_objects(f.value) or _keyed(call)):
        # dict.get and request.GET.get take positional arguments: never keyed
        return ".get( on a queryset: use the app's access.py gate"
    keyed_chain = any(isinstance(n, ast.Call) and _keyed(n) for n in _chain(f.value))
    if f.attr in {"first", "last"} and _has_objects(f.value) and keyed_chain:
        return f".filter(<key>=...).{f.attr}(): one object; use the app's access.py gate"
    return None


def findings(path: Path) -> Iterator[str]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        message = _message(node)
        if message and not PRAGMA.search(lines[node.lineno - 1]):
            yield f"{path}:{node.lineno}: {message}"


def targets(roots: list[Path]) -> list[Path]:
    files = [p for r in roots for p in ([r] if r.is_file() else r.rglob("*.py"))]
    return sorted(
        p for p in files if TARGET.search(p.as_posix()) and "migrations" not in p.parts
    )


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path(a) for a in APPS]
    found = [m for p in targets(roots) for m in findings(p)]
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
