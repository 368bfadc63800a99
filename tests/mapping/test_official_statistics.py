"""The shipped official statistics table: clean Source/Evidence text, the same rows as the shared
research copy it is made from (scripts/make_official_statistics.py), and importable."""

from __future__ import annotations

import csv
import importlib.util
import io
import sys
from pathlib import Path

import pytest

from mapping.models import StatisticStatus
from mapping.services.statistics import DEFAULT_STATISTICS

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_official_statistics", ROOT / "scripts" / "make_official_statistics.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_shipped_table_matches_the_shared_csv(shared_data):
    shared = shared_data / "stats" / "tnls_cultivated_land_by_province.csv"
    assert _rows(DEFAULT_STATISTICS) == _rows(shared), (
        "mapping/data's table differs from ../shared: run scripts/make_official_statistics.py"
    )


def test_shipped_table_has_no_working_notes():
    rows = _script().read_table(DEFAULT_STATISTICS.read_text(encoding="utf-8"))
    assert len(rows) == 33  # the national total, 31 provinces, Taiwan
    assert sum(r["status"] == "UNVERIFIED" for r in rows) == 13
    hubei = next(r for r in rows if r["province_en"] == "Hubei")
    assert hubei["source"].startswith("湖北省第三次全国国土调查主要数据公报")


def test_script_statuses_are_the_models():
    # The table ships survey figures only; the model also knows the demo's synthetic "DEMO".
    assert set(StatisticStatus.values) >= _script().STATUSES


def _write(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def test_script_refuses_notes_and_changed_figures(tmp_path, capsys):
    m = _script()
    rows = _rows(DEFAULT_STATISTICS)
    out = _write(tmp_path / "shipped.csv", rows, m.COLUMNS)
    before = out.read_bytes()

    noted = [dict(r) for r in rows]
    noted[3]["source"] = "not found in search corpora (~150 look-ups)"
    assert m.main([str(_write(tmp_path / "noted.csv", noted, m.COLUMNS)), "--out", str(out)]) == 1
    assert "working notes" in capsys.readouterr().err
    assert out.read_bytes() == before

    changed = [dict(r) for r in rows]
    changed[1]["cultivated_land_10k_ha"] = "999.99"
    src = _write(tmp_path / "changed.csv", changed, m.COLUMNS)
    assert m.main([str(src), "--out", str(out)]) == 1
    assert "cultivated_land_10k_ha 603.42 -> 999.99" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert m.main([str(src), "--out", str(out), "--allow-changes"]) == 0
    assert _rows(out) == changed


@pytest.mark.django_db
def test_shipped_table_imports(tmp_path):
    from mapping.models import Campaign, OfficialStatistic
    from mapping.services.admin_units import admin_units_load_default
    from mapping.services.statistics import statistics_import

    admin_units_load_default()
    campaign = Campaign.objects.create(slug="c", name="C", region="China", year=2020)
    report = statistics_import(campaign=campaign, path=DEFAULT_STATISTICS)
    assert report.created == 32 and report.skipped == ["line 2: national total"]
    hubei = OfficialStatistic.objects.get(campaign=campaign, province__adcode=420000)
    assert "look-ups" not in hubei.source and hubei.source.startswith("湖北省")
