"""GeoJSON map layers (``/api/v1/layers/``): requests and each boundary layer's current
version, built by PostGIS and sent as the bytes it wrote (``maps.features``). Public: only
public properties, sensitive categories at their cell centre without an address."""

import datetime as dt
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from geo311.open311.serializers import CommaListField

from . import features
from .features import DEFAULT_LIMIT, MAX_LIMIT, RequestFilters

GEOJSON = "application/geo+json"
PAGING = ("next", "prev")


class FirstRenderer(BaseContentNegotiation):
    """JSON whatever the Accept header says: these endpoints have one format (GDAL and
    browsers ask for application/geo+json, text/html, ... in turn); errors are JSON too."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class PublicLayerApi(APIView):
    """Public, read-only, JSON: no session lookup, no browsable API."""

    authentication_classes: list = []
    permission_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRenderer


def parse_moment(value: str, *, end: bool) -> dt.datetime:
    """An ISO 8601 date-time (without a zone: the city's) or a date: as an inclusive ``end``
    bound a date means its last second. Raises ValueError."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(value)
        moment = dt.datetime.combine(day, dt.time.max if end else dt.time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class MomentField(serializers.CharField):
    """A date or date-time (ISO 8601)."""

    def __init__(self, *, end: bool, **kwargs: Any) -> None:
        self.end = end
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dt.datetime:  # type: ignore[override]
        text = super().to_internal_value(data)
        try:
            return parse_moment(text, end=self.end)
        except (ValueError, OverflowError):
            raise serializers.ValidationError(
                "an ISO 8601 date or date-time, e.g. 2024-05-01 or 2024-05-01T08:00:00Z"
            ) from None


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in value.split(","))
    except ValueError:
        raise serializers.ValidationError(
            "four numbers: minx,miny,maxx,maxy (west,south,east,north, degrees)"
        ) from None
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise serializers.ValidationError("needs minx <= maxx and miny <= maxy, in degrees")
    return west, south, east, north


class BboxField(serializers.CharField):
    def to_internal_value(self, data: Any) -> tuple[float, float, float, float]:  # type: ignore[override]
        return parse_bbox(super().to_internal_value(data))


class RequestsLayerInputSerializer(serializers.Serializer):
    service_code = CommaListField(required=False, help_text="comma-separated service codes")
    status = CommaListField(
        required=False, help_text="comma-separated: open, closed or city status codes"
    )
    start = MomentField(
        end=False, required=False, help_text="requested at or after (date or date-time)"
    )
    end = MomentField(end=True, required=False, help_text="requested at or before")
    bbox = BboxField(required=False, help_text="minx,miny,maxx,maxy in degrees (WGS84)")
    limit = serializers.IntegerField(
        required=False, default=DEFAULT_LIMIT, min_value=1, max_value=MAX_LIMIT
    )
    offset = serializers.IntegerField(required=False, default=0, min_value=0)
    after = serializers.IntegerField(
        required=False, min_value=0, help_text="keyset cursor: from the `next` link"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The parameters are ``from`` and ``to`` (a Python keyword: not a declared name); the
        # values keep the fields' sources, ``start`` and ``end``.
        self.fields["from"] = self.fields.pop("start")
        self.fields["to"] = self.fields.pop("end")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "start" in attrs and "end" in attrs and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"to": "must not be before from"})
        if "after" in attrs and attrs["offset"]:
            raise serializers.ValidationError({"after": "give after or offset, not both"})
        return attrs

    def filters(self) -> RequestFilters:
        data = self.validated_data
        return RequestFilters(
            service_codes=data.get("service_code"),
            statuses=data.get("status"),
            start=data.get("start"),
            end=data.get("end"),
            bbox=data.get("bbox"),
        )


def _with(request: Request, **changes: Any) -> str:
    """This request's absolute URL with some query parameters changed (None removes one)."""
    query = request.query_params.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value is not None:
            query[key] = str(value)
    return request.build_absolute_uri(request.path + ("?" + urlencode(query) if query else ""))


def geojson_response(body: bytes, *, links: list[dict[str, str]] | None = None) -> HttpResponse:
    response = HttpResponse(body, content_type=GEOJSON)
    for link in links or []:
        if link["rel"] in ("next", "prev"):
            response.headers["Link"] = ", ".join(
                filter(
                    None, [response.headers.get("Link"), f'<{link["href"]}>; rel="{link["rel"]}"']
                )
            )
    return response


class RequestsLayerApi(PublicLayerApi):
    """Requests as one GeoJSON FeatureCollection page, ordered by id. Page on with the
    ``next`` link (a keyset cursor, ``after``) or with ``offset``."""

    @extend_schema(
        operation_id="layers_requests_geojson",
        parameters=[RequestsLayerInputSerializer],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT, 400: OpenApiResponse(OpenApiTypes.OBJECT)},
        tags=["layers"],
    )
    def get(self, request: Request) -> HttpResponse:
        params = RequestsLayerInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        page = features.requests_page(
            filters=params.filters(),
            limit=data["limit"],
            offset=data["offset"],
            after=data.get("after"),
        )
        links = [{"rel": "self", "type": GEOJSON, "href": _with(request)}]
        if page.more:
            links.append(
                {
                    "rel": "next",
                    "type": GEOJSON,
                    "href": _with(request, after=page.last_id, offset=None),
                }
            )
        body = features.feature_collection(page, numberReturned=page.returned, links=links)
        return geojson_response(body, links=links)


class BoundariesLayerInputSerializer(serializers.Serializer):
    bbox = BboxField(required=False, help_text="minx,miny,maxx,maxy in degrees (WGS84)")
    simplify = serializers.FloatField(
        required=False, default=0.0, min_value=0.0, max_value=10_000.0, help_text="metres"
    )


class BoundariesLayerApi(PublicLayerApi):
    """A boundary layer's current (active) version as one GeoJSON FeatureCollection."""

    @extend_schema(
        operation_id="layers_boundaries_geojson",
        parameters=[BoundariesLayerInputSerializer],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT},
        tags=["layers"],
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        params = BoundariesLayerInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        if not features.boundary_layers(slug=slug):
            raise NotFound({"layer": f"no layer '{slug}' with an active version"})
        page = features.boundaries_page(
            slug=slug,
            bbox=params.validated_data.get("bbox"),
            simplify_m=params.validated_data["simplify"],
        )
        return geojson_response(features.feature_collection(page, numberReturned=page.returned))
