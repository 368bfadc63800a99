"""Audit entries and client operations for writes that are not sample writes (labels, work)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotation.models import AuditEntry, ClientOperation
from annotation.services.samples import OperationIdReused


def block_audit_record(
    *,
    user: AbstractBaseUser,
    block_id: int,
    source_id: int | None,
    action: str,
    object_type: str,
    object_id: int,
    before: Any,
    after: Any,
    op_id: uuid.UUID | None = None,
) -> None:
    """One audit entry without a sample version (labels and assignments are not versioned)."""
    AuditEntry.objects.create(
        block_id=block_id,
        source_id=source_id,
        user=user,
        username=user.get_username(),
        action=action,
        object_type=object_type,
        object_id=object_id,
        version=None,
        op_id=op_id,
        before=before,
        after=after,
    )


def operation_replay(
    *, op_id: uuid.UUID, user: AbstractBaseUser, action: str, fingerprint: str
) -> dict[str, Any] | None:
    """The stored result of an operation seen before, None if new; refuses a reused id."""
    op = ClientOperation.objects.filter(op_id=op_id).first()
    if op is None:
        return None
    if op.user_id != user.pk or op.action != action or op.fingerprint != fingerprint:
        raise OperationIdReused(f"operation id {op_id} was already used for another request")
    return dict(op.result)


def operation_remember(
    *,
    op_id: uuid.UUID,
    user: AbstractBaseUser,
    block_id: int,
    action: str,
    fingerprint: str,
    result: dict[str, Any],
) -> None:
    try:
        with transaction.atomic():
            ClientOperation.objects.create(
                op_id=op_id,
                user=user,
                block_id=block_id,
                action=action,
                fingerprint=fingerprint,
                result=result,
            )
    except IntegrityError as e:
        raise OperationIdReused(f"operation id {op_id} is being used concurrently") from e
