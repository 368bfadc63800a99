"""REST endpoint for a block's audit: every change to its samples, with before and after."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.access import block_audit_get_for_user
from annotation.models import AuditEntry
from annotation.selectors import audit_list_for_block
from croplayer_site.pagination import BoundedLimitOffsetPagination


class BlockAuditApi(generics.ListAPIView):
    """Every change to the block's samples, newest first, with before and after."""

    pagination_class = BoundedLimitOffsetPagination

    class AuditEntryOutputSerializer(serializers.ModelSerializer):
        source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
        user = serializers.CharField(source="username")

        class Meta:
            model = AuditEntry
            fields = [
                "id",
                "created_at",
                "user",
                "action",
                "object_type",
                "object_id",
                "source",
                "version",
                "op_id",
                "before",
                "after",
            ]

    serializer_class = AuditEntryOutputSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("block_id", int, OpenApiParameter.PATH),
            OpenApiParameter("source", str, description="only this imagery source (slug)"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AuditEntry]:
        view = block_audit_get_for_user(user=self.request.user, block_id=self.kwargs["block_id"])
        source = self.request.query_params.get("source")
        return audit_list_for_block(block=view.block, source_slug=source, only=view.only)
