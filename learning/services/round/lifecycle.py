"""Round lifecycle as users drive it: start (one active round per campaign) and cancel."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Max

from learning.models import ACTIVE_ROUND_STATES, ProvinceDecision, ProvinceStatus, Round
from learning.services.config import RoundConfigError, round_config_parse
from learning.services.round import dispatch
from learning.services.round.machine import round_end
from learning.services.round.progress import log_line, round_broadcast, round_log
from mapping.models import AdminLevel, AdminUnit, Campaign


class RoundConflict(Exception):
    """The campaign already has an active round (the API answers 409 with its link)."""

    def __init__(self, active: Round) -> None:
        super().__init__(f"round {active.number} of this campaign is still {active.state}")
        self.active = active


class RoundNotActive(Exception):
    """The round is already done, failed or cancelled."""


class RoundInputError(ValueError):
    """Bad provinces or config for a new round; the message says what."""


def campaign_provinces(*, campaign: Campaign) -> list[AdminUnit]:
    """The campaign's provinces: those it names, else every province that has blocks."""
    named = list(campaign.provinces.all())
    if named:
        return named
    ids = campaign.blocks.exclude(province=None).values_list("province_id", flat=True).distinct()
    return list(AdminUnit.objects.filter(pk__in=ids, level=AdminLevel.PROVINCE))


def _target_provinces(
    *,
    campaign: Campaign,
    provinces: Iterable[AdminUnit | int] | None,
) -> list[AdminUnit]:
    allowed = {p.pk: p for p in campaign_provinces(campaign=campaign)}
    by_adcode = {p.adcode: p for p in allowed.values()}
    done = set(
        ProvinceStatus.objects.filter(
            campaign=campaign,
            decision__in=[ProvinceDecision.CONVERGED, ProvinceDecision.EXCLUDED],
        ).values_list("province_id", flat=True)
    )
    if provinces is None:
        chosen = [p for p in allowed.values() if p.pk not in done]
        if not chosen:
            raise RoundInputError("every province of the campaign is converged or excluded")
        return sorted(chosen, key=lambda p: p.adcode)
    chosen = []
    for item in provinces:
        unit = item if isinstance(item, AdminUnit) else by_adcode.get(int(item))
        if unit is None or unit.pk not in allowed:
            raise RoundInputError(
                f"province {getattr(item, 'adcode', item)} is not a province "
                f"of campaign {campaign.slug!r}"
            )
        chosen.append(unit)
    if not chosen:
        raise RoundInputError("no province given")
    return sorted({p.pk: p for p in chosen}.values(), key=lambda p: p.adcode)


def round_active(*, campaign: Campaign) -> Round | None:
    return Round.objects.filter(campaign=campaign, state__in=ACTIVE_ROUND_STATES).first()


def round_start(
    *,
    campaign: Campaign,
    provinces: Iterable[AdminUnit | int] | None,
    user: AbstractBaseUser | None,
    config: dict[str, Any] | None = None,
) -> Round:
    """Create a queued round and hand it to a worker (after commit).

    ``provinces`` are AdminUnits or adcodes; None means every province not yet converged or
    excluded. Raises RoundConflict when the campaign already has an active round — enforced by
    the database's partial unique index, so it holds for concurrent requests too — and
    RoundInputError / RoundConfigError for bad input.
    """
    try:
        cfg = round_config_parse(config)
    except RoundConfigError as e:
        raise RoundInputError(f"invalid config: {e}") from e
    targets = _target_provinces(campaign=campaign, provinces=provinces)
    active = round_active(campaign=campaign)
    if active is not None:
        raise RoundConflict(active)
    for attempt in range(20):
        number = (Round.objects.filter(campaign=campaign).aggregate(n=Max("number"))["n"] or 0) + 1
        try:
            with transaction.atomic():
                rnd = Round.objects.create(
                    campaign=campaign,
                    number=number,
                    requested_by=user,
                    config=cfg.model_dump(mode="json"),
                    log=log_line(
                        f"round {number} queued for "
                        f"{', '.join(p.name_en or p.name_zh for p in targets)}"
                    ),
                )
                rnd.provinces.set(targets)
                transaction.on_commit(lambda pk=rnd.pk: _dispatch_first(pk))
            return rnd
        except (IntegrityError, OperationalError) as e:
            # Lost a race: either another round became active (conflict), or another start
            # took the number and then finished, or SQLite was busy; look again.
            active = round_active(campaign=campaign)
            if active is not None:
                raise RoundConflict(active) from e
            time.sleep(0.05 * (attempt + 1))
    raise RoundInputError("could not create the round (database busy); try again")


def _dispatch_first(round_id: int) -> None:
    dispatch.round_advance_enqueue(round_id)
    dispatch.rounds_watch_enqueue(countdown=5)


def round_cancel(*, rnd: Round, user: AbstractBaseUser | None) -> Round:
    """Stop a round now: its row turns cancelled at once; running tasks see it and stop."""
    who = user.get_username() if user is not None else "system"
    if not round_end(round_id=rnd.pk, outcome="cancel", cancel_requested=True):
        rnd.refresh_from_db()
        raise RoundNotActive(f"round {rnd.number} is already {rnd.state}")
    round_log(rnd=rnd, message=f"cancelled by {who}")
    rnd.refresh_from_db()
    round_broadcast(rnd=rnd)
    return rnd
