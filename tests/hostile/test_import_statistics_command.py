"""manage.py import_statistics with values its column cannot hold, and every reader of a row
stored before the import checked them: one CommandError line, nothing written, no 500."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from mapping.models import OfficialStatistic

pytestmark = pytest.mark.django_db

HEADER = "province_zh,value_ha,status,source\n"


def _csv(tmp_path, value: str):
    path = tmp_path / "stats.csv"
    path.write_text(f"{HEADER}江苏省,{value},VERIFIED,test\n", encoding="utf-8")
    return path


def _import(path) -> None:
    call_command("import_statistics", str(path), "--campaign", "hostile", stdout=StringIO())


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1e30", "too large"),
        ("99999999999", "too large"),
        ("1e400", "too large"),
        # The hostile province is 0.3° x 0.3° at 32° N: about 93,000 ha.
        ("500000", "more than the whole area of 江苏省"),
        ("nan", "not a non-negative number"),
        ("-1", "not a non-negative number"),
    ],
)
def test_impossible_values_are_refused(value, words, campaign, tmp_path):
    with pytest.raises(CommandError) as err:
        _import(_csv(tmp_path, value))
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert OfficialStatistic.objects.count() == 0


def test_broken_csv_is_one_line(campaign, tmp_path):
    path = tmp_path / "stats.csv"
    path.write_text(HEADER + "江苏省," + "9" * 200_000 + ",VERIFIED,x\n", encoding="utf-8")
    with pytest.raises(CommandError) as err:
        _import(path)
    assert "\n" not in str(err.value)
    assert OfficialStatistic.objects.count() == 0


def test_a_plausible_value_is_imported(campaign, tmp_path):
    _import(_csv(tmp_path, "50000"))
    assert float(OfficialStatistic.objects.get().hectares) == 50000


@pytest.fixture
def stored_overflow(campaign, tmp_path):
    """A row as an import without the range check stored it (SQLite keeps any number)."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's numeric(14, 4) cannot hold such a row in the first place")
    _import(_csv(tmp_path, "50000"))
    with connection.cursor() as cur:
        cur.execute("UPDATE mapping_officialstatistic SET value = 1e30")
    return campaign


@pytest.mark.parametrize("role", ["lead", "admin"])
def test_readers_of_a_stored_overflow_do_not_fail(role, stored_overflow, users, login):
    user = users[role]
    if role == "admin":  # the Django admin's pages need the model permissions
        user.is_superuser = True
        user.save()
    c = login(user)
    slug = stored_overflow.slug
    urls = [
        f"/campaigns/{slug}/dashboard/",
        f"/campaigns/{slug}/",
        f"/api/campaigns/{slug}/dashboard/",
        f"/api/campaigns/{slug}/province-status/?format=csv",
        f"/api/campaigns/{slug}/statistics/",
    ]
    if role == "admin":
        pk = OfficialStatistic.objects.values_list("pk", flat=True).get()
        urls += ["/admin/mapping/officialstatistic/",
                 f"/admin/mapping/officialstatistic/{pk}/change/"]
    for url in urls:
        r = c.get(url)
        assert r.status_code == 200, (url, r.status_code)


def test_commands_over_a_stored_overflow_do_not_fail(stored_overflow, tmp_path):
    out = StringIO()
    call_command("stop_status", "--campaign", stored_overflow.slug, "--json", stdout=out)
    assert out.getvalue()
    # Importing again replaces the impossible row.
    _import(_csv(tmp_path, "60000"))
    assert float(OfficialStatistic.objects.get().hectares) == 60000
