"""Limit/offset paging with bounds: a page never asks the database for more than it can answer.

DRF's ``LimitOffsetPagination`` passes any positive integer on, so ``?limit=9223372036854775808``
reached SQLite as an integer it cannot hold (a 500). Here ``limit`` is clamped to
:data:`MAX_LIMIT` (DRF's documented ``max_limit`` behaviour) and an ``offset`` beyond
:data:`MAX_OFFSET` is refused with 400 and the reason.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``limit`` at most 1,000 (larger values are clamped); ``offset`` at most 10,000,000."""

    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int | None:
        raw = request.query_params.get(self.limit_query_param)
        if raw is not None and raw.strip().isdigit() and len(raw.strip()) > 9:
            return self.max_limit  # a huge number: clamped without converting it
        return super().get_limit(request)

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is not None and raw.strip().isdigit() and (
            len(raw.strip()) > 9 or int(raw) > MAX_OFFSET
        ):
            reason = _("offset must be at most %(max)s") % {"max": MAX_OFFSET}
            raise ValidationError({self.offset_query_param: [reason]})
        return super().get_offset(request)

    def get_schema_operation_parameters(self, view: object) -> list[dict[str, object]]:
        params: list[dict[str, object]] = super().get_schema_operation_parameters(view)
        for p in params:
            schema = p.get("schema")
            if isinstance(schema, dict) and p.get("name") == self.limit_query_param:
                schema["maximum"] = MAX_LIMIT
                p["description"] = f"Number of results to return per page (at most {MAX_LIMIT})."
            if isinstance(schema, dict) and p.get("name") == self.offset_query_param:
                schema["maximum"] = MAX_OFFSET
        return params
