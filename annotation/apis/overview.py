"""REST endpoint for the overview map's blocks as GeoJSON: status, verdicts, province."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_overview_get_for_user
from annotation.apis.assignments import CAMPAIGN_ROUTE
from annotation.models import AssignmentStatus, Verdict
from annotation.selectors import UNASSIGNED, OverviewFilter, campaign_overview_blocks
from mapping.geo.grid import grid_for

MAX_OVERVIEW_FEATURES = 20000


class CampaignOverviewApi(APIView):
    class OverviewFilterInputSerializer(serializers.Serializer):
        province = serializers.IntegerField(required=False, help_text="province adcode")
        status = serializers.ChoiceField(
            choices=[UNASSIGNED, *AssignmentStatus.values],
            required=False,
            help_text="work status of the block (annotators: of their own assignment)",
        )
        verdict = serializers.ChoiceField(choices=Verdict.values, required=False)
        source = serializers.SlugField(
            required=False, help_text="with verdict: the newest verdict on this source"
        )
        assignee = serializers.CharField(
            required=False, max_length=150, help_text="username (leads and admins)"
        )
        bbox = serializers.CharField(required=False, help_text="west,south,east,north")
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_OVERVIEW_FEATURES, default=5000
        )

        def validate_bbox(self, value: str) -> tuple[float, float, float, float]:
            try:
                w, s, e, n = (float(v) for v in value.split(","))
            except ValueError as exc:
                raise serializers.ValidationError("bbox must be four numbers: w,s,e,n") from exc
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise serializers.ValidationError(
                    "bbox must be lon/lat with west<east, south<north"
                )
            return (w, s, e, n)

    class OverviewOutputSerializer(serializers.Serializer):
        type = serializers.CharField(default="FeatureCollection")
        features = serializers.ListField(
            child=serializers.DictField(),
            help_text="Block rectangles; properties: code, province (adcode), province_name, "
            "county, seed_order, status, assignees, agreement, verdicts (source -> newest)",
        )
        truncated = serializers.BooleanField(help_text="More blocks matched than the limit")
        workspace_url = serializers.CharField(help_text="The block's page; {id} is the block id")

    @extend_schema(
        summary="The campaign's blocks for the overview map: status, verdicts, province",
        parameters=[*CAMPAIGN_ROUTE, OverviewFilterInputSerializer],
        responses={
            200: OverviewOutputSerializer,
            400: OpenApiResponse(description="Bad filter; reason per field"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        campaign, only_user = campaign_overview_get_for_user(user=request.user, slug=slug)
        q = self.OverviewFilterInputSerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        v = q.validated_data
        rows = cols = None
        if "bbox" in v:
            rows, cols = grid_for(campaign.block_size_deg).blocks_in_bounds(*v["bbox"])
        data = campaign_overview_blocks(
            campaign=campaign,
            f=OverviewFilter(
                only_user=only_user,
                province=v.get("province"),
                status=v.get("status"),
                verdict=v.get("verdict"),
                source=v.get("source"),
                assignee=v.get("assignee") if only_user is None else None,
                rows=rows,
                cols=cols,
                limit=v["limit"],
            ),
        )
        data["workspace_url"] = reverse("block-workspace", args=[0]).replace("/0/", "/{id}/")
        # Returned as built (the serializer documents it): putting 20,000 features through
        # DRF's DictField one by one doubles the response time and changes nothing.
        return Response(data)
