"""REST endpoints for a block's labels: verdicts on its prediction and coverage types per imagery
source, the integration decision, and the block's current labels."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import block_labels_get_for_user, label_target_get_for_user
from annotation.apis.samples import ROUTE
from annotation.models import CoverageType, IntegrationDecision, Verdict
from annotation.selectors import ProvenanceUnknown, block_labels
from annotation.services import (
    LabelWrite,
    NothingToJudge,
    OperationIdReused,
    PredictionChanged,
    coverage_label_set,
    integration_label_set,
    verdict_label_set,
)

LABEL_ERRORS = {
    400: OpenApiResponse(description="Bad input; reason per field"),
    403: OpenApiResponse(description="Not logged in, block not assigned to you, or not a lead"),
    404: OpenApiResponse(description="No such block or source (or not visible to you)"),
    409: OpenApiResponse(
        description="Your assignment is submitted or accepted, op_id reused for another request, "
        "the verdict names another model version than the block's current prediction, "
        "or the block has no current prediction on the source to judge"
    ),
}


class LabelOutputBase(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["verdict", "coverage", "integration"])
    block = serializers.IntegerField()
    source = serializers.CharField(allow_null=True, help_text="Imagery source slug")
    value = serializers.CharField(help_text="The verdict, coverage type or integration decision")
    user = serializers.CharField(allow_null=True, help_text="Who labelled")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(help_text="When it was last decided")
    model_version = serializers.CharField(allow_blank=True)
    round_number = serializers.IntegerField(allow_null=True)


class LabelInputBase(serializers.Serializer):
    op_id = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="Optional; a retry returns it"
    )
    model_version = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )
    round_number = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, default=None
    )


def _label_write(call: Callable[[], LabelWrite], output: type[serializers.Serializer]) -> Response:
    try:
        result = call()
    except OperationIdReused as e:
        return Response({"op_id": [str(e)]}, status=status.HTTP_409_CONFLICT)
    except PredictionChanged as e:
        return Response({"model_version": [str(e)]}, status=status.HTTP_409_CONFLICT)
    except NothingToJudge as e:
        return Response({"detail": str(e)}, status=status.HTTP_409_CONFLICT)
    except ProvenanceUnknown as e:
        raise ValidationError({"model_version": [str(e)]}) from e
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return Response(output(result.label).data, headers=headers)


class VerdictLabelApi(APIView):
    class VerdictLabelInputSerializer(LabelInputBase):
        verdict = serializers.ChoiceField(choices=Verdict.choices)

    class VerdictLabelOutputSerializer(LabelOutputBase):
        pass

    @extend_schema(
        summary="Set your verdict on the block's prediction on one source",
        parameters=ROUTE,
        request=VerdictLabelInputSerializer,
        responses={200: VerdictLabelOutputSerializer, **LABEL_ERRORS},
    )
    def put(self, request: Request, block_id: int, source: str) -> Response:
        target = label_target_get_for_user(
            user=request.user, block_id=block_id, kind="verdict", source_slug=source
        )
        s = self.VerdictLabelInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _label_write(
            lambda: verdict_label_set(
                user=request.user, block=target.block, source=target.source, **s.validated_data
            ),
            self.VerdictLabelOutputSerializer,
        )


class CoverageLabelApi(APIView):
    class CoverageLabelInputSerializer(LabelInputBase):
        coverage_type = serializers.ChoiceField(choices=CoverageType.choices)

    class CoverageLabelOutputSerializer(LabelOutputBase):
        pass

    @extend_schema(
        summary="Set your coverage type of the block's image on one source",
        parameters=ROUTE,
        request=CoverageLabelInputSerializer,
        responses={200: CoverageLabelOutputSerializer, **LABEL_ERRORS},
    )
    def put(self, request: Request, block_id: int, source: str) -> Response:
        target = label_target_get_for_user(
            user=request.user, block_id=block_id, kind="coverage", source_slug=source
        )
        s = self.CoverageLabelInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _label_write(
            lambda: coverage_label_set(
                user=request.user, block=target.block, source=target.source, **s.validated_data
            ),
            self.CoverageLabelOutputSerializer,
        )


class IntegrationLabelApi(APIView):
    class IntegrationLabelInputSerializer(LabelInputBase):
        decision = serializers.ChoiceField(choices=IntegrationDecision.choices)

    class IntegrationLabelOutputSerializer(LabelOutputBase):
        pass

    @extend_schema(
        summary="Decide how the block's predictions are integrated (leads and admins)",
        parameters=[OpenApiParameter("block_id", int, OpenApiParameter.PATH)],
        request=IntegrationLabelInputSerializer,
        responses={200: IntegrationLabelOutputSerializer, **LABEL_ERRORS},
    )
    def put(self, request: Request, block_id: int) -> Response:
        target = label_target_get_for_user(user=request.user, block_id=block_id, kind="integration")
        s = self.IntegrationLabelInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        return _label_write(
            lambda: integration_label_set(
                user=request.user, block=target.block, **s.validated_data
            ),
            self.IntegrationLabelOutputSerializer,
        )


class BlockLabelsApi(APIView):
    class BlockLabelOutputSerializer(LabelOutputBase):
        pass

    class BlockLabelsOutputSerializer(serializers.Serializer):
        block = serializers.IntegerField()
        verdicts = serializers.ListField(child=serializers.DictField())
        coverage = serializers.ListField(child=serializers.DictField())
        integration = serializers.DictField(allow_null=True)

    @extend_schema(
        summary="The block's current labels (annotators: their own verdicts and coverage types)",
        parameters=[OpenApiParameter("block_id", int, OpenApiParameter.PATH)],
        responses={200: BlockLabelsOutputSerializer, 404: None},
    )
    def get(self, request: Request, block_id: int) -> Response:
        view = block_labels_get_for_user(user=request.user, block_id=block_id)
        data = block_labels(block=view.block, only_user=view.only_user)
        return Response(self.BlockLabelsOutputSerializer(data).data)
