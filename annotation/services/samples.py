"""Writes to a block's samples: draw, edit, delete polygons, mark a block negative.

Every write is one transaction that

1. returns the stored result if its operation id was seen before (a retry from the browser's
   offline outbox, or a lost response), without writing again;
2. claims the sample's version with a conditional update: it only proceeds if the version is still
   the one the client last saw, and raises StaleVersion (with the current version and polygons)
   otherwise; a block with no sample yet has version 0;
3. writes, with an AuditEntry holding the object before and after, and stores the result under the
   operation id.

Geometry is checked (``annotation.geometry``) before anything is written.

Every write takes a ``copy`` (``annotation.selectors.SampleCopy``): the block's primary sample by
default, or the blind agreement copy of the block's second annotator; the machinery is the same,
only the tables and the audit's object types differ.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.gis.geos import GEOSGeometry
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from shapely import Polygon, to_wkb

from annotation.geometry import MAX_VERTICES, polygon_clean
from annotation.models import (
    AgreementPolygon,
    AgreementSample,
    AuditAction,
    AuditEntry,
    ClientOperation,
    CroplandSubtype,
    Sample,
    SampleKind,
    SamplePolygon,
)
from annotation.selectors import (
    PRIMARY,
    SampleCopy,
    polygon_feature,
    prediction_provenance,
    sample_polygon_features,
    sample_version,
)
from mapping.models import Block, ImagerySource


class StaleVersion(Exception):
    """The client wrote against an old version; it gets the current state to reconcile."""

    def __init__(self, *, current_version: int, polygons: list[dict[str, Any]]) -> None:
        super().__init__(f"the sample is at version {current_version}")
        self.current_version = current_version
        self.polygons = polygons


class PolygonNotFound(Exception):
    """No such polygon in this block's sample on this source."""


class OperationIdReused(Exception):
    """The operation id was already used for a different request (or by another user)."""


@dataclass(frozen=True)
class SampleWrite:
    """What a write left behind: the sample's new version and kind, and the polygon written."""

    version: int
    kind: str
    polygon: dict[str, Any] | None
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "kind": self.kind, "polygon": self.polygon}


def _fingerprint(**request: Any) -> str:
    text = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(
    *, op_id: uuid.UUID, user: AbstractBaseUser, action: str, fingerprint: str
) -> SampleWrite | None:
    op = ClientOperation.objects.filter(op_id=op_id).first()
    if op is None:
        return None
    if op.user_id != user.pk or op.action != action or op.fingerprint != fingerprint:
        raise OperationIdReused(f"operation id {op_id} was already used for another request")
    return SampleWrite(**op.result, replayed=True)


def _stale(*, block: Block, source: ImagerySource, copy: SampleCopy = PRIMARY) -> StaleVersion:
    return StaleVersion(
        current_version=sample_version(block=block, source=source, copy=copy),
        polygons=sample_polygon_features(block=block, source=source, copy=copy),
    )


AnySample = Sample | AgreementSample
AnyPolygon = SamplePolygon | AgreementPolygon


def _sample_claim(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    expected_version: int,
    new_kind: str,
    copy: SampleCopy = PRIMARY,
) -> tuple[AnySample, bool]:
    """The sample with its version bumped, if it was still ``expected_version``; and whether it
    was created (version 0 means the block has no sample yet)."""
    rows = copy.sample_model.objects  # type: ignore[attr-defined]  # both models have it
    where = {"block": block, "source": source, **copy.lookup()}
    if expected_version == 0:
        try:
            with transaction.atomic():
                sample = rows.create(**where, kind=new_kind, created_by=user, version=1)
                return sample, True
        except IntegrityError:
            pass  # created meanwhile by someone else: stale
    else:
        claimed = rows.filter(**where, version=expected_version).update(version=F("version") + 1)
        if claimed == 1:
            return rows.get(**where), False
    raise _stale(block=block, source=source, copy=copy)


def _audit(
    *,
    user: AbstractBaseUser,
    sample: AnySample,
    action: str,
    object_type: str,
    object_id: int,
    op_id: uuid.UUID,
    before: Any,
    after: Any,
) -> None:
    AuditEntry.objects.create(
        block_id=sample.block_id,
        source_id=sample.source_id,
        user=user,
        username=user.get_username(),
        action=action,
        object_type=object_type,
        object_id=object_id,
        version=sample.version,
        op_id=op_id,
        before=before,
        after=after,
    )


def _sample_write(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    expected_version: int,
    op_id: uuid.UUID,
    action: str,
    request: dict[str, Any],
    new_kind: str,
    apply: Callable[[AnySample, str | None], dict[str, Any] | None],
    copy: SampleCopy = PRIMARY,
) -> SampleWrite:
    """Replay, claim the version, set the kind, ``apply`` (which writes and audits; it gets the
    kind the sample had before, None if new), remember the result."""
    fingerprint = _fingerprint(
        action=action, block=block.pk, source=source.slug, agreement=copy.is_agreement, **request
    )
    with transaction.atomic():
        replay = _replay(op_id=op_id, user=user, action=action, fingerprint=fingerprint)
        if replay is not None:
            return replay
        try:
            sample, created = _sample_claim(
                user=user,
                block=block,
                source=source,
                expected_version=expected_version,
                new_kind=new_kind,
                copy=copy,
            )
        except StaleVersion:
            # The same operation, retried while its first attempt was committing, won the claim.
            replay = _replay(op_id=op_id, user=user, action=action, fingerprint=fingerprint)
            if replay is not None:
                return replay
            raise
        previous_kind = None if created else sample.kind
        if sample.kind != new_kind:
            sample.kind = new_kind
            sample.save(update_fields=["kind"])
            if new_kind == SampleKind.POSITIVE:
                _audit(
                    user=user,
                    sample=sample,
                    action=AuditAction.SAMPLE_MARK_POSITIVE,
                    object_type=copy.object_type("sample"),
                    object_id=sample.pk,
                    op_id=op_id,
                    before={"kind": previous_kind},
                    after={"kind": new_kind},
                )
        polygon = apply(sample, previous_kind)
        result = SampleWrite(version=sample.version, kind=sample.kind, polygon=polygon)
        try:
            with transaction.atomic():
                ClientOperation.objects.create(
                    op_id=op_id,
                    user=user,
                    block=block,
                    action=action,
                    fingerprint=fingerprint,
                    result=result.as_json(),
                )
        except IntegrityError as e:
            raise OperationIdReused(f"operation id {op_id} is being used concurrently") from e
    return result


def _geos(poly: Polygon) -> GEOSGeometry:
    return GEOSGeometry(memoryview(to_wkb(poly)), srid=4326)


def polygon_create(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    geometry: object,
    subtype: str = CroplandSubtype.IRRIGATED_DRY,
    expected_version: int,
    op_id: uuid.UUID,
    model_version: str = "",
    round_number: int | None = None,
    max_vertices: int = MAX_VERTICES,
    copy: SampleCopy = PRIMARY,
) -> SampleWrite:
    """Draw a cropland polygon on the block (clipped to it); a negative sample turns positive.

    The polygon's provenance (model version, round) is decided here: the prediction the browser
    names (``model_version``, e.g. "start from the prediction"), if it is one of this block on
    the source (ProvenanceUnknown if not), else the block's current prediction, else none.
    ``round_number`` as sent is not taken; it only identifies a retried operation.
    """
    poly = polygon_clean(geometry, bounds=block.geometry.extent, max_vertices=max_vertices)

    def apply(sample: AnySample, _previous_kind: str | None) -> dict[str, Any]:
        version, made_in = prediction_provenance(block=block, source=source, claimed=model_version)
        p = copy.polygon_model.objects.create(  # type: ignore[attr-defined]  # both have it
            sample=sample,
            geometry=_geos(poly),
            subtype=subtype,
            created_by=user,
            model_version=version,
            round_number=made_in,
        )
        after = polygon_feature(polygon=p, source=source)
        _audit(
            user=user,
            sample=sample,
            action=AuditAction.POLYGON_CREATE,
            object_type=copy.object_type("sample_polygon"),
            object_id=p.pk,
            op_id=op_id,
            before=None,
            after=after,
        )
        return after

    return _sample_write(
        user=user,
        block=block,
        source=source,
        expected_version=expected_version,
        op_id=op_id,
        action=AuditAction.POLYGON_CREATE,
        request={
            "geometry": geometry,
            "subtype": subtype,
            "model_version": model_version,
            "round_number": round_number,
        },
        new_kind=SampleKind.POSITIVE,
        apply=apply,
        copy=copy,
    )


def _polygon_for_write(
    *, sample: AnySample, polygon_id: int, copy: SampleCopy = PRIMARY
) -> AnyPolygon:
    model = copy.polygon_model
    try:
        return model.objects.select_related("created_by", "updated_by").get(  # type: ignore[attr-defined,no-any-return]
            pk=polygon_id, sample=sample
        )
    except model.DoesNotExist as e:
        raise PolygonNotFound(f"no polygon {polygon_id} in this sample") from e


def polygon_update(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    polygon_id: int,
    geometry: object | None = None,
    subtype: str | None = None,
    expected_version: int,
    op_id: uuid.UUID,
    max_vertices: int = MAX_VERTICES,
    copy: SampleCopy = PRIMARY,
) -> SampleWrite:
    """Change a polygon's shape and/or subtype; its creation provenance stays."""
    if geometry is None and subtype is None:
        raise ValueError("nothing to change: give a geometry or a subtype")
    poly = (
        polygon_clean(geometry, bounds=block.geometry.extent, max_vertices=max_vertices)
        if geometry is not None
        else None
    )

    def apply(sample: AnySample, _previous_kind: str | None) -> dict[str, Any]:
        p = _polygon_for_write(sample=sample, polygon_id=polygon_id, copy=copy)
        before = polygon_feature(polygon=p, source=source)
        if poly is not None:
            p.geometry = _geos(poly)
        if subtype is not None:
            p.subtype = subtype
        p.updated_by = user
        p.updated_at = timezone.now()
        p.save(update_fields=["geometry", "subtype", "updated_by", "updated_at"])
        after = polygon_feature(polygon=p, source=source)
        _audit(
            user=user,
            sample=sample,
            action=AuditAction.POLYGON_UPDATE,
            object_type=copy.object_type("sample_polygon"),
            object_id=p.pk,
            op_id=op_id,
            before=before,
            after=after,
        )
        return after

    return _sample_write(
        user=user,
        block=block,
        source=source,
        expected_version=expected_version,
        op_id=op_id,
        action=AuditAction.POLYGON_UPDATE,
        request={"polygon_id": polygon_id, "geometry": geometry, "subtype": subtype},
        new_kind=SampleKind.POSITIVE,
        apply=apply,
        copy=copy,
    )


def polygon_delete(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    polygon_id: int,
    expected_version: int,
    op_id: uuid.UUID,
    copy: SampleCopy = PRIMARY,
) -> SampleWrite:
    """Delete a polygon. The sample stays positive, also when it has no polygon left: only
    ``sample_mark_negative`` says that a block has no cropland."""

    def apply(sample: AnySample, _previous_kind: str | None) -> None:
        p = _polygon_for_write(sample=sample, polygon_id=polygon_id, copy=copy)
        before = polygon_feature(polygon=p, source=source)
        pk = p.pk
        p.delete()
        _audit(
            user=user,
            sample=sample,
            action=AuditAction.POLYGON_DELETE,
            object_type=copy.object_type("sample_polygon"),
            object_id=pk,
            op_id=op_id,
            before=before,
            after=None,
        )
        return None

    return _sample_write(
        user=user,
        block=block,
        source=source,
        expected_version=expected_version,
        op_id=op_id,
        action=AuditAction.POLYGON_DELETE,
        request={"polygon_id": polygon_id},
        new_kind=SampleKind.POSITIVE,
        apply=apply,
        copy=copy,
    )


def sample_mark_negative(
    *,
    user: AbstractBaseUser,
    block: Block,
    source: ImagerySource,
    expected_version: int,
    op_id: uuid.UUID,
    copy: SampleCopy = PRIMARY,
) -> SampleWrite:
    """The block has no cropland on this source: delete its polygons, set the kind negative.
    The audit entry keeps the deleted polygons, so the change can be undone by hand."""

    def apply(sample: AnySample, previous_kind: str | None) -> None:
        polygons = sample_polygon_features(block=block, source=source, copy=copy)
        sample.polygons.all().delete()
        _audit(
            user=user,
            sample=sample,
            action=AuditAction.SAMPLE_MARK_NEGATIVE,
            object_type=copy.object_type("sample"),
            object_id=sample.pk,
            op_id=op_id,
            before={"kind": previous_kind, "polygons": polygons},
            after={"kind": SampleKind.NEGATIVE.value, "polygons": []},
        )
        return None

    return _sample_write(
        user=user,
        block=block,
        source=source,
        expected_version=expected_version,
        op_id=op_id,
        action=AuditAction.SAMPLE_MARK_NEGATIVE,
        request={},
        new_kind=SampleKind.NEGATIVE,
        apply=apply,
        copy=copy,
    )
