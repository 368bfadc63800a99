"""REST endpoints of the mapping app: thin views over selectors and services."""

from __future__ import annotations

import hashlib
from pathlib import Path

import shapely
from django.conf import settings
from django.contrib.gis.db.models.functions import AsWKB
from django.http import HttpResponse, HttpResponseNotModified
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mapping.access import block_get_for_user, campaign_get_for_user, campaign_list_for_user
from mapping.geo.grid import grid_for, tile_range
from mapping.models import Block, BlockImage, OfficialStatistic
from mapping.selectors import block_image_get
from mapping.services.statistics import MAX_VALUE as MAX_STATISTIC_VALUE
from mapping.services.tiles import TileOutside, block_tile_render

MAX_FEATURES = 20000


class CampaignListApi(APIView):
    class CampaignOutputSerializer(serializers.Serializer):
        slug = serializers.SlugField()
        name = serializers.CharField()
        region = serializers.CharField()
        year = serializers.IntegerField()
        block_size_deg = serializers.DecimalField(max_digits=6, decimal_places=4)
        zoom = serializers.IntegerField()
        n_blocks = serializers.IntegerField()

    @extend_schema(responses=CampaignOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = campaign_list_for_user(user=request.user)
        return Response(self.CampaignOutputSerializer(qs, many=True).data)


class CampaignStatisticsApi(APIView):
    class StatisticOutputSerializer(serializers.Serializer):
        province_adcode = serializers.IntegerField(source="province.adcode")
        province = serializers.CharField(source="province.name_zh")
        province_en = serializers.CharField(source="province.name_en")
        value = serializers.DecimalField(max_digits=14, decimal_places=4)
        unit = serializers.CharField()
        hectares = serializers.DecimalField(max_digits=18, decimal_places=2)
        status = serializers.CharField()
        source = serializers.CharField()
        evidence = serializers.CharField()

    @extend_schema(responses=StatisticOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        # A figure too wide for the value column (stored on SQLite before imports checked the
        # range) cannot be shown as the decimal the schema promises; it is left out.
        qs = OfficialStatistic.objects.filter(
            campaign=campaign, value__lt=MAX_STATISTIC_VALUE
        ).select_related("province")
        return Response(
            self.StatisticOutputSerializer(qs.order_by("province__adcode"), many=True).data
        )


class CampaignBlocksGeoJsonApi(APIView):
    class FilterSerializer(serializers.Serializer):
        province = serializers.IntegerField(required=False, help_text="province adcode")
        bbox = serializers.CharField(required=False, help_text="west,south,east,north")
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_FEATURES, default=5000
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

    @extend_schema(parameters=[FilterSerializer], responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        campaign = campaign_get_for_user(user=request.user, slug=slug)
        f = self.FilterSerializer(data=request.query_params)
        f.is_valid(raise_exception=True)
        qs = Block.objects.filter(campaign=campaign)
        if "province" in f.validated_data:
            qs = qs.filter(province__adcode=f.validated_data["province"])
        if "bbox" in f.validated_data:
            # Rows and columns, not a spatial "intersects": blocks that only touch the box
            # along an edge are not in it.
            rows, cols = grid_for(campaign.block_size_deg).blocks_in_bounds(
                *f.validated_data["bbox"]
            )
            qs = qs.filter(
                row__gte=rows.start, row__lt=rows.stop, col__gte=cols.start, col__lt=cols.stop
            )
        limit = f.validated_data["limit"]
        # Values and the geometry as WKB, read by shapely in one vectorised call: model
        # instances with a GEOS polygon each cost about 1 ms per block.
        found = list(
            qs.order_by("row", "col")
            .annotate(wkb=AsWKB("geometry"))
            .values(
                "pk", "row", "col", "land_fraction", "province__name_zh", "county__name_zh", "wkb"
            )[: limit + 1]
        )
        shown = found[:limit]
        rings = shapely.get_exterior_ring(shapely.from_wkb([bytes(r["wkb"]) for r in shown]))
        coords = shapely.get_coordinates(rings).tolist()
        features = []
        at = 0
        for r, n in zip(shown, shapely.get_num_coordinates(rings).tolist(), strict=True):
            features.append(
                {
                    "type": "Feature",
                    "id": r["pk"],
                    "geometry": {"type": "Polygon", "coordinates": [coords[at : at + n]]},
                    "properties": {
                        "code": f"R{r['row']:04d}C{r['col']:04d}",
                        "province": r["province__name_zh"],
                        "county": r["county__name_zh"],
                        "land_fraction": round(r["land_fraction"], 3),
                    },
                }
            )
            at += n
        return Response(
            {"type": "FeatureCollection", "features": features, "truncated": len(found) > limit}
        )


class BlockDetailApi(APIView):
    class ImageSerializer(serializers.ModelSerializer):
        source = serializers.SlugRelatedField(slug_field="slug", read_only=True)

        class Meta:
            model = BlockImage
            fields = ["source", "status", "reason", "width", "height", "checksum", "fetched_at"]

    class BlockOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        code = serializers.CharField()
        campaign = serializers.CharField(source="campaign.slug")
        row = serializers.IntegerField()
        col = serializers.IntegerField()
        bounds = serializers.ListField(child=serializers.FloatField(), source="geometry.extent")
        province = serializers.CharField(source="province.name_zh", allow_null=True)
        county = serializers.CharField(source="county.name_zh", allow_null=True)
        land_fraction = serializers.FloatField()

    @extend_schema(responses=BlockOutputSerializer)
    def get(self, request: Request, block_id: int) -> Response:
        block = block_get_for_user(user=request.user, block_id=block_id)
        data = dict(self.BlockOutputSerializer(block).data)
        data["images"] = self.ImageSerializer(block.images.select_related("source"), many=True).data
        return Response(data)


class BlockTileJsonApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request: Request, block_id: int, source: str) -> Response:
        block = block_get_for_user(user=request.user, block_id=block_id)
        block_image_get(block=block, source_slug=source)
        w, s, e, n = block.geometry.extent
        zoom = block.campaign.zoom
        template = request.build_absolute_uri(
            reverse("api-block-tile", args=[block.pk, source, 0, 0, 0])
        ).replace("/0/0/0.png", "/{z}/{x}/{y}.png")
        return Response(
            {
                "tilejson": "2.2.0",
                "name": f"{block.code} {source}",
                "scheme": "xyz",
                "tiles": [template],
                "bounds": [w, s, e, n],
                "center": [(w + e) / 2, (s + n) / 2, zoom],
                "minzoom": max(zoom - 4, 0),
                "maxzoom": zoom + 2,
            }
        )


class BlockTileApi(APIView):
    """A 256-px PNG of a block image in Web Mercator; transparent outside the block."""

    @extend_schema(
        responses={(200, "image/png"): bytes},
        parameters=[
            OpenApiParameter("z", int, "path"),
            OpenApiParameter("x", int, "path"),
            OpenApiParameter("y", int, "path"),
        ],
    )
    def get(self, request: Request, block_id: int, source: str, z: int, x: int, y: int):
        block = block_get_for_user(user=request.user, block_id=block_id)
        image = block_image_get(block=block, source_slug=source)
        zoom = block.campaign.zoom
        if not (max(zoom - 4, 0) <= z <= zoom + 2) or not (0 <= x < 2**z and 0 <= y < 2**z):
            raise ValidationError(
                {
                    "z": f"zoom must be within {max(zoom - 4, 0)}..{zoom + 2} "
                    "and x, y within the zoom's tile range"
                }
            )
        rng = tile_range(block.geometry.extent, z)
        if not (rng.x_min <= x <= rng.x_max and rng.y_min <= y <= rng.y_max):
            return HttpResponse(status=204)
        etag = '"' + hashlib.sha256(f"{image.checksum}/{z}/{x}/{y}".encode()).hexdigest()[:32] + '"'
        if request.headers.get("If-None-Match") == etag:
            return HttpResponseNotModified(headers={"ETag": etag})
        try:
            png = block_tile_render(path=Path(settings.DATA_DIR) / image.path, z=z, x=x, y=y)
        except TileOutside:
            return HttpResponse(status=204)
        resp = HttpResponse(png, content_type="image/png")
        resp["ETag"] = etag
        resp["Cache-Control"] = "private, max-age=86400"
        return resp
