"""REST endpoints for blind double annotation: the agreement of blocks given to two people, and
giving a share of blocks to two people."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import StateConflict, assignees_resolve, campaign_get_for_lead
from annotation.apis.assignments import CAMPAIGN_ROUTE, AssignmentOutputBase
from annotation.selectors import campaign_agreement
from annotation.services import AssignmentRefused, agreement_share_assign, assignment_create


class AgreementTotalsOutputSerializer(serializers.Serializer):
    rows_compared = serializers.IntegerField(help_text="Rows (block x source) with an IoU")
    mean_iou = serializers.FloatField(allow_null=True)
    verdicts_compared = serializers.IntegerField()
    verdicts_agreed = serializers.IntegerField()
    verdict_agreement = serializers.FloatField(allow_null=True)


class CampaignAgreementApi(APIView):
    class AgreementRowOutputSerializer(serializers.Serializer):
        block = serializers.IntegerField()
        code = serializers.CharField()
        source = serializers.CharField()
        users = serializers.ListField(
            child=serializers.CharField(allow_null=True),
            help_text="The primary annotator, then the second (blind) one",
        )
        statuses = serializers.ListField(child=serializers.CharField(allow_null=True))
        kinds = serializers.ListField(
            child=serializers.CharField(allow_null=True),
            help_text="Sample kind on each side (positive, negative; null: not labelled)",
        )
        iou = serializers.FloatField(
            allow_null=True, help_text="IoU of the two sides' cropland; null when neither drew"
        )
        verdicts = serializers.ListField(child=serializers.CharField(allow_null=True))
        verdict_agrees = serializers.BooleanField(allow_null=True)

    class AgreementOutputSerializer(AgreementTotalsOutputSerializer):
        campaign = serializers.CharField()
        blocks = serializers.IntegerField(help_text="Blocks given to two people")
        by_source = serializers.DictField(child=AgreementTotalsOutputSerializer())
        rows = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        summary="Agreement of blocks given to two people: polygon IoU, verdict agreement",
        parameters=CAMPAIGN_ROUTE,
        responses={
            200: AgreementOutputSerializer,
            403: OpenApiResponse(description="Not a lead or admin"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        data = campaign_agreement(campaign=campaign)
        data["rows"] = self.AgreementRowOutputSerializer(data["rows"], many=True).data
        return Response(self.AgreementOutputSerializer(data).data)


class CampaignAgreementAssignApi(APIView):
    class AgreementAssignInputSerializer(serializers.Serializer):
        users = serializers.ListField(
            child=serializers.CharField(max_length=150),
            min_length=2,
            max_length=2,
            help_text="The primary annotator, then the second one who draws blind",
        )
        percent = serializers.FloatField(
            required=False,
            min_value=0.001,
            max_value=100,
            help_text="Share of the first person's open blocks, spread over their queue",
        )
        blocks = serializers.ListField(
            child=serializers.IntegerField(), required=False, min_length=1, max_length=10000
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("percent" in attrs) == ("blocks" in attrs):
                raise serializers.ValidationError("give either percent or blocks")
            if attrs["users"][0] == attrs["users"][1]:
                raise serializers.ValidationError({"users": ["two different people"]})
            return attrs

    class AgreementAssignedOutputSerializer(AssignmentOutputBase):
        class Meta(AssignmentOutputBase.Meta):
            pass

    class AgreementAssignOutputSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.DictField())
        skipped = serializers.IntegerField()

    @extend_schema(
        summary="Give a share of blocks (percent of the first person's, or chosen) to two people",
        parameters=CAMPAIGN_ROUTE,
        request=AgreementAssignInputSerializer,
        responses={
            201: AgreementAssignOutputSerializer,
            400: OpenApiResponse(description="Bad share, unknown person or block, nothing open"),
            403: OpenApiResponse(description="Not a lead or admin"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
            409: OpenApiResponse(description="A block already has a second annotator"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_lead(user=request.user, slug=slug)
        s = self.AgreementAssignInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            first, second = assignees_resolve(usernames=s.validated_data["users"])
            if "percent" in s.validated_data:
                created, skipped = agreement_share_assign(
                    lead=request.user,
                    campaign=campaign,
                    first=first,
                    second=second,
                    percent=s.validated_data["percent"],
                )
            else:
                created, skipped = assignment_create(
                    lead=request.user,
                    campaign=campaign,
                    block_ids=s.validated_data["blocks"],
                    assignees=[first, second],
                )
        except ValueError as e:
            raise ValidationError({"detail": [str(e)]}) from e
        except AssignmentRefused as e:
            raise StateConflict(e.reason) from e
        body = {
            "created": self.AgreementAssignedOutputSerializer(created, many=True).data,
            "skipped": skipped,
        }
        return Response(
            self.AgreementAssignOutputSerializer(body).data, status=status.HTTP_201_CREATED
        )
