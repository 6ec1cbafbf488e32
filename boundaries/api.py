"""Boundary API: one small view per operation, with its own input serializer."""

from itertools import groupby

from django.contrib.gis.geos import Point
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors
from .models import Boundary, Layer
from .serializers import (
    BoundaryFeatureSerializer,
    LayerBoundariesInputSerializer,
    LayerDetailSerializer,
    LayerSerializer,
    LookupBoundarySerializer,
    LookupInputSerializer,
)


class BoundaryLookupApi(APIView):
    """Every active boundary that contains a WGS84 point, grouped by layer."""

    @extend_schema(
        parameters=[LookupInputSerializer],
        responses=inline_serializer(
            "Lookup",
            {
                "lat": serializers.FloatField(),
                "lon": serializers.FloatField(),
                "layers": inline_serializer(
                    "LookupLayer",
                    {
                        "layer": serializers.CharField(),
                        "name": serializers.CharField(),
                        "kind": serializers.CharField(),
                        "version": serializers.IntegerField(),
                        "boundaries": LookupBoundarySerializer(many=True),
                    },
                    many=True,
                ),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        params = LookupInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        lat, lon = params.validated_data["lat"], params.validated_data["lon"]
        boundaries = selectors.boundaries_containing(
            point=Point(lon, lat, srid=4326), layers=params.validated_data.get("layer")
        )
        layers = []
        for _, group in groupby(boundaries, key=lambda b: b.version.layer_id):
            items = list(group)
            version = items[0].version
            layers.append(
                {
                    "layer": version.layer.slug,
                    "name": version.layer.name,
                    "kind": version.layer.kind,
                    "version": version.number,
                    # Plain dicts, not a ModelSerializer per group: building serializer fields
                    # was 3 of the 8 ms of a lookup (bench lookup_latency, in_process_api).
                    "boundaries": [
                        {
                            "id": b.pk,
                            "code": b.code,
                            "name": b.name,
                            "url": request.build_absolute_uri(
                                reverse("boundaries:boundary-detail", args=[b.pk])
                            ),
                        }
                        for b in items
                    ],
                }
            )
        return Response({"lat": lat, "lon": lon, "layers": layers})


class LayerListApi(generics.ListAPIView):
    serializer_class = LayerSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Layer]:
        return selectors.layer_list()


class LayerDetailApi(generics.RetrieveAPIView):
    serializer_class = LayerDetailSerializer
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet[Layer]:
        return selectors.layer_list().prefetch_related("versions")


class LayerBoundariesApi(APIView):
    """A layer's boundaries (active version unless ``?version=N``) as GeoJSON, built by PostGIS."""

    @extend_schema(
        parameters=[LayerBoundariesInputSerializer],
        responses={(200, "application/geo+json"): OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        layer = get_object_or_404(Layer, slug=slug)
        params = LayerBoundariesInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        number = params.validated_data.get("version")
        if number:
            version = layer.versions.filter(number=number).first()
        else:
            version = selectors.layer_active_version(layer=layer)
        if version is None:
            missing = f"version {number}" if number else "active version"
            raise NotFound(f"layer '{slug}' has no {missing}")
        body = selectors.layer_boundaries_geojson(
            version=version,
            simplify_m=params.validated_data["simplify"],
            bbox=params.validated_data.get("bbox"),
        )
        return HttpResponse(body, content_type="application/geo+json")


class BoundaryDetailApi(generics.RetrieveAPIView):
    serializer_class = BoundaryFeatureSerializer
    queryset = Boundary.objects.select_related("version__layer")
