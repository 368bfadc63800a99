"""Factories of the objects many tests need: users with roles, provinces, a small campaign, a
segmenter's current prediction. Fixtures are in ``tests/conftest.py``; this module is imported by
tests and fixtures (after Django is set up)."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User
from django.contrib.gis.geos import MultiPolygon, Polygon

from croplayer_site.roles import roles_ensure
from mapping.models import AdminLevel, AdminUnit, Block, Campaign
from mapping.services.members import campaign_members_add

ROLE_USERS = ("annotator", "lead", "admin", "outsider")


def password_of(name: str) -> str:
    """The password ``user_make`` gives ``name`` (the login form of browser tests types it)."""
    return f"{name}-pw-123!"


def user_make(name: str, *, role: str | None = None, staff: bool = False) -> User:
    """A user ``name`` with password ``password_of(name)``, in the group of ``role`` if given
    ("annotator", "lead", "admin")."""
    u = User.objects.create_user(name, password=password_of(name), is_staff=staff)
    if role is not None:
        u.groups.add(roles_ensure()[role])
    return u


def role_users_make() -> dict[str, User]:
    """annotator, lead, admin (each in their group, the admin staff) and an outsider with no
    role: the four users of the ``users`` fixture."""
    groups = roles_ensure()
    return {
        name: user_make(name, role=name if name in groups else None, staff=name == "admin")
        for name in ROLE_USERS
    }


def multipolygon(bbox: tuple[float, float, float, float]) -> MultiPolygon:
    """The rectangle ``(west, south, east, north)`` as a WGS 84 multipolygon (admin units)."""
    return MultiPolygon(Polygon.from_bbox(bbox), srid=4326)


def province_make(
    adcode: int, name_zh: str, bbox: tuple[float, float, float, float], *, name_en: str = ""
) -> AdminUnit:
    """A province whose outline is the rectangle ``bbox``."""
    return AdminUnit.objects.create(
        level=AdminLevel.PROVINCE,
        adcode=adcode,
        name_zh=name_zh,
        name_en=name_en,
        geometry=multipolygon(bbox),
    )


def one_block_campaign_make(*, slug: str, name: str, lead: User) -> Campaign:
    """A campaign at zoom 12 over one province (a corner of Jiangsu, 0.3 x 0.3 degrees) with one
    block; ``lead`` is a member. What imports of files need to land in."""
    c = Campaign.objects.create(slug=slug, name=name, region="China", year=2020, zoom=12)
    campaign_members_add(campaign=c, users=[lead])
    unit = province_make(320000, "江苏省", (118.9, 31.9, 119.2, 32.2), name_en="Jiangsu")
    c.provinces.set([unit])
    Block.objects.create(campaign=c, row=2440, col=5980, province=unit,
                         geometry=Polygon.from_bbox((119.0, 32.0, 119.05, 32.05)))
    return c


def current_prediction_make(
    *, blocks: Iterable, sources: Iterable, name: str = "seg-r1", round_number: int = 1
):
    """The campaign's current segmenter ``name`` (made in round ``round_number``, done) with an
    empty prediction of each block on each source; the ModelVersion. Verdicts judge a
    prediction, so a test that labels verdicts needs one (the server refuses a verdict on a
    block without)."""
    from learning.models import BlockPrediction, ModelKind, ModelVersion, Round

    blocks = list(blocks)
    campaign = blocks[0].campaign
    rnd, _ = Round.objects.get_or_create(
        campaign=campaign, number=round_number, defaults={"state": "done"}
    )
    ModelVersion.objects.filter(
        campaign=campaign, kind=ModelKind.SEGMENTER, is_current=True
    ).exclude(name=name).update(is_current=False)
    seg, _ = ModelVersion.objects.get_or_create(
        campaign=campaign,
        kind=ModelKind.SEGMENTER,
        name=name,
        defaults={"bundle_path": f"models/{name}", "round": rnd, "is_current": True},
    )
    for block in blocks:
        for source in sources:
            BlockPrediction.objects.get_or_create(
                block=block,
                source=source,
                model_version=seg,
                defaults={"round": rnd, "mask_path": "m.tif", "cropland_fraction": 0.0},
            )
    return seg
