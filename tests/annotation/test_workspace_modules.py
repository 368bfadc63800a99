"""The workspace's ES modules (``static/annotation/workspace.js`` and ``workspace/``), served as
they are with no build step: every import names a file that exists, every module is reached from
the entry, and the service worker precaches each one (a reload offline needs them all)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

from annotation.offline import WORKSPACE_ASSETS

STATIC = Path(settings.BASE_DIR) / "static"
ENTRY = STATIC / "annotation" / "workspace.js"
IMPORT = re.compile(r'^import (?:[^"]* from )?"([^"]+)";$', re.M)


def _imports(path: Path) -> list[Path]:
    specs = IMPORT.findall(path.read_text())
    assert all(spec.startswith("./") and spec.endswith(".js") for spec in specs), specs
    return [(path.parent / spec).resolve() for spec in specs]


def test_every_import_names_a_module_and_every_module_is_reached():
    seen: set[Path] = set()
    todo = [ENTRY.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        assert path.is_file(), path
        seen.add(path)
        todo += _imports(path)
    modules = {p.resolve() for p in (STATIC / "annotation" / "workspace").glob("*.js")}
    assert len(modules) > 5
    assert seen == modules | {ENTRY.resolve()}


def test_every_module_is_precached_for_offline():
    names = {str(p.relative_to(STATIC)) for p in (STATIC / "annotation" / "workspace").glob("*.js")}
    assert names | {"annotation/workspace.js"} <= set(WORKSPACE_ASSETS)
