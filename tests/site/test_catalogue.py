"""The Chinese catalogue keeps up with the code: every string marked for translation in the
project's sources has a Chinese translation in locale/zh_Hans (none missing, none empty, none
fuzzy).

tests/annotation/test_workspace_browser.py checks the committed .po as it stands (complete,
compiled into the committed .mo); this test runs ``makemessages`` as docs/workspace.md says, on
a copy of the sources, so a string added in code without running it fails here too.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PO = Path("locale/zh_Hans/LC_MESSAGES/django.po")
# The same folders docs/workspace.md's makemessages line ignores.
IGNORED = {".venv", "var", "bench", "tests", ".git", ".ci", "node_modules"}
# makemessages' django domain reads these (its default --extension html,txt and py).
EXTENSIONS = {".py", ".html", ".txt"}
# msgids deliberately left without a Chinese translation (none today). Name each with why.
DELIBERATELY_ENGLISH: dict[str, str] = {}


def entries(po: Path) -> list[tuple[str, str, bool]]:
    """(msgid, msgstr — the first form for plurals, fuzzy) of each live entry of a .po."""
    out = []
    for block in po.read_text(encoding="utf-8").split("\n\n"):
        lines = [ln for ln in block.splitlines() if not ln.startswith("#~")]
        fields: dict[str, str] = {}
        key = None
        for ln in lines:
            if ln.startswith("#"):
                continue
            if ln.startswith('"') and key is not None:
                fields[key] += ast.literal_eval(ln)
                continue
            head, _, rest = ln.partition(" ")
            if rest.startswith('"'):
                key = head
                fields[key] = ast.literal_eval(rest)
        if "msgid" not in fields or fields["msgid"] == "":
            continue  # the header
        fuzzy = any(ln.startswith("#,") and "fuzzy" in ln for ln in lines)
        msgstr = fields.get("msgstr", fields.get("msgstr[0]", ""))
        out.append((fields["msgid"], msgstr, fuzzy))
    return out


def _copy_sources(dest: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = Path(dirpath).relative_to(ROOT)
        dirnames[:] = [d for d in dirnames
                       if d not in IGNORED and not d.startswith(".") and d != "__pycache__"]
        for name in filenames:
            if Path(name).suffix in EXTENSIONS:
                (dest / rel).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(dirpath) / name, dest / rel / name)


def test_every_marked_string_has_a_chinese_translation(tmp_path):
    if shutil.which("xgettext") is None or shutil.which("msgmerge") is None:
        pytest.skip("gettext is not installed")
    src = tmp_path / "src"
    _copy_sources(src)
    (src / PO).parent.mkdir(parents=True)
    shutil.copy2(ROOT / PO, src / PO)
    # The copy's settings write the catalogue into the copy, never into the work tree.
    (src / "catalogue_settings.py").write_text(
        "from pathlib import Path\n"
        "from croplayer_site.settings import *  # noqa: F403\n"
        "LOCALE_PATHS = [Path(__file__).resolve().parent / 'locale']\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "catalogue_settings",
           "CROPLAYER_VAR_DIR": str(tmp_path / "var"), "PYTHONPATH": str(src)}
    before = (ROOT / PO).read_bytes()
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans",
         *(f"--ignore={d}" for d in sorted(IGNORED)), "--add-location=file", "--no-obsolete"],
        cwd=src, env=env, check=True, capture_output=True, timeout=300,
    )
    assert (ROOT / PO).read_bytes() == before  # the work tree's catalogue is untouched
    fresh = entries(src / PO)
    assert len(fresh) > 500
    missing = [
        f"{'fuzzy' if fuzzy else 'untranslated'}: {msgid!r}"
        for msgid, msgstr, fuzzy in fresh
        if (fuzzy or not msgstr.strip()) and msgid not in DELIBERATELY_ENGLISH
    ]
    assert missing == [], (
        "strings without a Chinese translation; run the makemessages line of "
        "docs/workspace.md, translate them, compilemessages:\n" + "\n".join(missing)
    )


def test_the_parser_sees_empty_and_fuzzy_entries(tmp_path):
    """The check above would pass on anything if the parser missed such entries."""
    po = tmp_path / "t.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Language: zh_Hans\\n"\n\n'
        '#: a.py\nmsgid "Cropland"\nmsgstr "耕地"\n\n'
        '#: a.py\nmsgid ""\n"Two "\n"lines"\nmsgstr ""\n\n'
        '#: a.py\n#, fuzzy\n#| msgid "Block"\nmsgid "Blocks"\nmsgstr "图块"\n\n'
        '#: a.py\nmsgid "%(n)s block"\nmsgid_plural "%(n)s blocks"\nmsgstr[0] ""\n\n'
        '#~ msgid "Old"\n#~ msgstr "旧"\n',
        encoding="utf-8",
    )
    assert entries(po) == [("Cropland", "耕地", False), ("Two lines", "", False),
                           ("Blocks", "图块", True), ("%(n)s block", "", False)]
