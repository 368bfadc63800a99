"""The overview map's legend numbers: one thin view over ``annotation.tiles.overview_counts``.

The overview page fetches them after it has rendered: for a national campaign the newest
verdict per block and source is an anti-join over every verdict (seconds), which the map does
not need to draw. The response carries the tiles' validator, so a page shown again revalidates
with one small query instead of counting again.
"""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.access import campaign_overview_get_for_user
from annotation.apis.overview_tiles import _not_modified
from annotation.tiles import TileScope, overview_counts, overview_tile_version


class CampaignOverviewCountsApi(APIView):
    class CountsOutputSerializer(serializers.Serializer):
        total = serializers.IntegerField(help_text="Blocks in the scope (an annotator's: theirs)")
        statuses = serializers.DictField(
            child=serializers.IntegerField(),
            help_text="Blocks per work status of the primary assignment, 'unassigned' included",
        )
        verdicts = serializers.DictField(
            child=serializers.DictField(child=serializers.IntegerField()),
            help_text="Per imagery source slug: blocks per newest verdict ('none': no verdict)",
        )
        provinces = serializers.DictField(
            child=serializers.IntegerField(), help_text="Blocks per province adcode"
        )

    @extend_schema(
        summary="The campaign overview legend's numbers: blocks per work status, per newest "
        "verdict of each source and per province",
        parameters=[OpenApiParameter("slug", str, OpenApiParameter.PATH)],
        responses={
            200: CountsOutputSerializer,
            304: OpenApiResponse(description="Unchanged since the ETag sent in If-None-Match"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        campaign, only_user = campaign_overview_get_for_user(user=request.user, slug=slug)
        scope = TileScope(campaign=campaign, only_user=only_user)
        etag = overview_tile_version(scope=scope)
        if _not_modified(request, etag):
            response: HttpResponse = HttpResponseNotModified()
        else:
            response = Response(self.CountsOutputSerializer(overview_counts(scope=scope)).data)
        response["ETag"] = etag
        # Private (an annotator's numbers are their own) and revalidated on every use.
        response["Cache-Control"] = "private, no-cache"
        response["Vary"] = "Cookie"
        return response
