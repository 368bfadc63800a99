"""scripts/check_access.py: views, APIs and consumers look objects up through access.py."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BAD = '''\
from django.shortcuts import get_object_or_404


def page(request, qs, s, i):
    a = Foo.objects.get(pk=1)
    b = qs.get(slug=s)
    c = Foo.objects.filter(pk=i).select_related("campaign").first()
    d = get_object_or_404(Foo, pk=1)
    return a, b, c, d
'''

FINE = '''\
def page(request, rows):
    a = request.GET.get("a")
    b = {"x": 1}.get("x", 0)
    c = Foo.objects.get(pk=1)  # access: checked by the caller
    d = Foo.objects.filter(campaign=a).first()
    return a, b, c, d
'''


def _script():
    spec = importlib.util.spec_from_file_location(
        "check_access", ROOT / "scripts" / "check_access.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_tree_passes(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert _script().main([]) == 0, capsys.readouterr().out


def test_each_bad_pattern_is_one_finding_and_the_rest_none(tmp_path, capsys):
    check = _script()
    (tmp_path / "x_views.py").write_text(BAD)
    (tmp_path / "apis").mkdir()
    (tmp_path / "apis" / "fine.py").write_text(FINE)
    (tmp_path / "services.py").write_text(BAD)  # not a view: not scanned
    assert check.main([os.fspath(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1] for line in out] == ["5", "6", "7", "8"], out
    assert all("x_views.py" in line for line in out)
    assert check.main([os.fspath(tmp_path / "apis")]) == 0
