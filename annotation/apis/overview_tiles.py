"""The overview map's vector tiles: one thin view over ``annotation.tiles``."""

from __future__ import annotations

from django.http import HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.views import APIView

from annotation.access import campaign_overview_get_for_user
from annotation.tiles import TileScope, overview_tile, overview_tile_version

MAX_ZOOM = 18
MVT = "application/vnd.mapbox-vector-tile"


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    if not header:
        return False
    # Weak comparison (RFC 9110 13.1.2): a W/ prefix does not matter for GET.
    tags = {t.removeprefix("W/") for t in parse_etags(header)}
    return "*" in tags or etag in tags


class CampaignOverviewTileApi(APIView):
    @extend_schema(
        summary="The campaign's blocks as a Mapbox vector tile (status, people, verdicts, "
        "predicted cropland fraction, integration decision); merged into cells at low zooms",
        parameters=[
            OpenApiParameter("slug", str, OpenApiParameter.PATH),
            OpenApiParameter("z", int, OpenApiParameter.PATH),
            OpenApiParameter("x", int, OpenApiParameter.PATH),
            OpenApiParameter("y", int, OpenApiParameter.PATH),
        ],
        responses={
            (200, MVT): bytes,
            304: OpenApiResponse(description="Unchanged since the ETag sent in If-None-Match"),
            400: OpenApiResponse(description="Zoom or tile numbers out of range"),
            404: OpenApiResponse(description="No such campaign (or not visible to you)"),
        },
    )
    def get(self, request: Request, slug: str, z: int, x: int, y: int) -> HttpResponse:
        campaign, only_user = campaign_overview_get_for_user(user=request.user, slug=slug)
        if not 0 <= z <= MAX_ZOOM:
            raise ValidationError({"z": _("zoom must be within 0..%(max)d") % {"max": MAX_ZOOM}})
        if not (0 <= x < 2**z and 0 <= y < 2**z):
            raise ValidationError(
                {
                    "x": _("x and y must be within 0..%(last)d at zoom %(z)d")
                    % {"last": 2**z - 1, "z": z}
                }
            )
        scope = TileScope(campaign=campaign, only_user=only_user)
        etag = overview_tile_version(scope=scope)
        if _not_modified(request, etag):
            response: HttpResponse = HttpResponseNotModified()
        else:
            response = HttpResponse(overview_tile(scope=scope, z=z, x=x, y=y), content_type=MVT)
        response["ETag"] = etag
        # Private (an annotator's tiles are their own) and revalidated on every use.
        response["Cache-Control"] = "private, no-cache"
        response["Vary"] = "Cookie, Accept-Language"
        return response
