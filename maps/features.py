"""Public map layers as GeoJSON: requests and boundary layers, for the GeoJSON layer API
(``/api/v1/layers/``) and OGC API - Features (``/ogc/``).

Collections are built by PostGIS (``maps.sql_features``) and leave here as bytes, a page at a
time; only a single feature goes through a drf-gis serializer (``RequestFeatureSerializer``),
which computes the same properties in Python. Both publish a sensitive category's request at
its grid cell's centre (``geo311.privacy``) without its street address, and neither knows any
reporter field. Coordinates are WGS84 (EPSG:4326) degrees.
"""

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.contrib.gis.geos import Point
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework_gis.fields import GeometrySerializerMethodField
from rest_framework_gis.serializers import GeoFeatureModelSerializer

from geo311.models import ServiceRequest
from geo311.privacy import public_address_of, public_location_of, sensitive_grid_m

from . import sql_features as sql
from .sql_features import BoundaryLayer, Extent, Page

# A page of a layer holds at most this many features (GeoJSON layers and OGC items alike).
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
OGC_DEFAULT_LIMIT = 100
UTC_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class RequestFilters:
    """What a requests layer shows: ``statuses`` are Open311 statuses (open, closed) or city
    status codes; ``start``/``end`` bound the requested time, inclusive; ``bbox`` is (west,
    south, east, north) in degrees, tested on the public point."""

    service_codes: list[str] | None = None
    statuses: list[str] | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    bbox: tuple[float, float, float, float] | None = None


def requests_page(
    *,
    filters: RequestFilters,
    limit: int,
    offset: int = 0,
    after: int | None = None,
    count: bool = False,
) -> Page:
    """A page of public request features, ordered by id: ``after`` (a keyset cursor, the
    previous page's ``last_id``) or ``offset``; ``count`` also counts every match (one more
    scan: OGC's numberMatched)."""
    return sql.request_page(
        service_codes=filters.service_codes,
        statuses=filters.statuses,
        start=filters.start,
        end=filters.end,
        bbox=filters.bbox,
        limit=limit,
        offset=offset,
        after=after,
        count=count,
        grid_m=sensitive_grid_m(),
    )


def boundaries_page(
    *,
    slug: str,
    bbox: tuple[float, float, float, float] | None = None,
    simplify_m: float = 0.0,
    limit: int = MAX_LIMIT,
    offset: int = 0,
    count: bool = False,
) -> Page:
    """A page of a layer's active boundaries, by code; ``simplify_m`` a tolerance in metres."""
    return sql.boundary_page(
        slug=slug, bbox=bbox, simplify_m=simplify_m, limit=limit, offset=offset, count=count
    )


def boundary_feature(*, slug: str, fid: int) -> dict[str, Any] | None:
    """One active boundary of a layer as a GeoJSON Feature, or None."""
    page = sql.boundary_page(slug=slug, bbox=None, simplify_m=0.0, limit=1, fid=fid)
    features = json.loads(page.features)
    return features[0] if features else None


def boundary_layers(*, slug: str | None = None) -> list[BoundaryLayer]:
    """The boundary layers that have an active version, each with its extent."""
    return sql.boundary_layers(slug=slug)


def request_extent() -> Extent:
    """The box (to 0.01°, outwards) and time span of all requests."""
    return sql.request_extent()


def feature_collection(page: Page, **members: Any) -> bytes:
    """A FeatureCollection document around a page's features: ``members`` (links, counts)
    first, as JSON, then the features' bytes as the database wrote them."""
    head = json.dumps({"type": "FeatureCollection", **members}, separators=(",", ":"))
    return b"".join((head[:-1].encode(), b',"features":', page.features, b"}"))


# --- single features through drf-gis -------------------------------------------------------


class RequestFeatureSerializer(GeoFeatureModelSerializer):
    """A request as a public GeoJSON Feature, with the properties of the database layer
    (``sql_features.REQUEST_PAGE``). For one feature or a short list: for pages, the database
    path is the one to use (bench ``geojson_1000``)."""

    fid = serializers.CharField(source="public_id")
    geometry = GeometrySerializerMethodField()
    service_request_id = serializers.CharField(source="public_id")
    service_code = serializers.CharField(source="category.service_code")
    service_name = serializers.CharField(source="category.name")
    status = serializers.CharField(source="status.open311_status")
    detailed_status = serializers.CharField(source="status.code")
    status_name = serializers.CharField(source="status.name")
    agency_responsible = serializers.CharField(source="department.name", allow_null=True)
    requested_datetime = serializers.DateTimeField(
        source="requested_at", format=UTC_SECONDS, default_timezone=dt.UTC
    )
    updated_datetime = serializers.DateTimeField(
        source="updated_at", format=UTC_SECONDS, default_timezone=dt.UTC
    )
    closed_datetime = serializers.DateTimeField(
        source="closed_at", format=UTC_SECONDS, default_timezone=dt.UTC, allow_null=True
    )
    address = serializers.SerializerMethodField()
    location_precision_m = serializers.SerializerMethodField()

    class Meta:
        model = ServiceRequest
        geo_field = "geometry"
        id_field = "fid"
        fields = [
            "fid",
            "geometry",
            "service_request_id",
            "service_code",
            "service_name",
            "status",
            "detailed_status",
            "status_name",
            "agency_responsible",
            "requested_datetime",
            "updated_datetime",
            "closed_datetime",
            "address",
            "location_precision_m",
        ]

    def get_geometry(self, request: ServiceRequest) -> Point:
        point = public_location_of(request)
        return Point(round(point.x, 6), round(point.y, 6), srid=4326)

    def get_address(self, request: ServiceRequest) -> str:
        return public_address_of(request)

    def get_location_precision_m(self, request: ServiceRequest) -> float:
        return sensitive_grid_m() if request.category.sensitive else 0.0


def request_features_queryset() -> QuerySet[ServiceRequest]:
    """Requests with what ``RequestFeatureSerializer`` reads, in one query, by id."""
    return (
        ServiceRequest.objects.select_related("category", "status", "department")
        .only(
            "public_id",
            "location",
            "address",
            "requested_at",
            "updated_at",
            "closed_at",
            "category__service_code",
            "category__name",
            "category__sensitive",
            "status__open311_status",
            "status__code",
            "status__name",
            "department__name",
        )
        .order_by("pk")
    )


def request_feature(*, public_id: str) -> dict[str, Any] | None:
    """One request as a public GeoJSON Feature (drf-gis), or None."""
    found = request_features_queryset().filter(public_id=public_id).first()
    return None if found is None else dict(RequestFeatureSerializer(found).data)
