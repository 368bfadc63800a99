"""The README's national command sequence runs as written, from an empty database: it starts
with ``campaign_create`` and each later command finds what the earlier ones made."""

from __future__ import annotations

import json
import re
import shlex
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from mapping.models import AdminLevel, AdminUnit, Block, Campaign, OfficialStatistic

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
PREFIX = ".venv/bin/python manage.py "


def readme_sequence() -> list[list[str]]:
    """The commands of the block after ``<!-- national-sequence -->``, as argument lists."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- national-sequence -->\s*```sh\n(.*?)```", text, re.S)
    assert m, "README.md has no national sequence block"
    out = []
    for line in m.group(1).splitlines():
        if not line.strip():
            continue
        assert line.startswith(PREFIX), line
        out.append(shlex.split(line[len(PREFIX) :], comments=True))
    return out


def run(args: list[str]) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_sequence_starts_by_creating_its_campaign():
    seq = readme_sequence()
    assert seq[0][0] == "campaign_create" and seq[0][1] == "china-2020"
    # Every later command names the campaign the first one made.
    for args in seq[1:]:
        if "--campaign" in args:
            assert args[args.index("--campaign") + 1] == "china-2020", args


def test_each_command_in_order_on_one_province():
    """The README's commands in order, the campaign narrowed to Macau (one line more:
    ``--provinces 820000``) so the grid takes a second; the slow test runs them unchanged."""
    seq = readme_sequence()
    first, rest = seq[0], seq[1:]
    # Naming a province needs the boundaries: import them first, as campaign_create asks.
    admin = next(a for a in rest if a[0] == "import_admin_units")
    run(admin)
    run([*first, "--provinces", "820000"])
    for args in rest:
        output = run(args)
    campaign = Campaign.objects.get(slug="china-2020")
    assert campaign.name == "China 2020" and campaign.year == 2020 and campaign.zoom == 16
    assert list(campaign.provinces.values_list("adcode", flat=True)) == [820000]
    assert OfficialStatistic.objects.filter(campaign=campaign).count() == 32
    report = json.loads(output)  # grid_build --json was the last command
    assert report["blocks"] == Block.objects.filter(campaign=campaign).count() > 0
    assert set(Block.objects.values_list("province__adcode", flat=True)) == {820000}


@pytest.mark.slow
def test_the_national_sequence_as_written():
    """Unchanged, nationwide: about two minutes for the grid on SQLite."""
    outputs = [run(args) for args in readme_sequence()]
    campaign = Campaign.objects.get(slug="china-2020")
    assert not campaign.provinces.exists()  # every imported province
    assert AdminUnit.objects.filter(level=AdminLevel.PROVINCE).count() == 34
    assert OfficialStatistic.objects.filter(campaign=campaign).count() == 32
    assert json.loads(outputs[-1])["blocks"] == 390_270  # the README's figure
