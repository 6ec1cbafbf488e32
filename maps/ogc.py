"""OGC API - Features, Part 1 (core, GeoJSON, OpenAPI 3.0) at ``/ogc/``: one collection per
boundary layer with an active version (by slug) and ``requests``, so QGIS and GDAL's OAPIF
driver read geo311 directly.

Items pages come from the database as bytes (``maps.features``), with ``numberMatched``,
``numberReturned`` and self/next/prev links (offset paging). The OpenAPI document is the
project's (``/api/schema/``), where these views are described. Only JSON (``f=json``, the
default); items and features are ``application/geo+json``. Public, as every map layer:
sensitive categories at their cell centre, no reporter field.
"""

import datetime as dt
import json
from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request

from . import features
from .features import MAX_LIMIT, OGC_DEFAULT_LIMIT, RequestFilters
from .layers_api import GEOJSON, BboxField, PublicLayerApi, _with, geojson_response, parse_moment
from .sql_features import BoundaryLayer, Extent

REQUESTS = "requests"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
TAGS = ["ogc"]


def _json(body: dict[str, Any], content_type: str = JSON) -> HttpResponse:
    return HttpResponse(json.dumps(body, separators=(",", ":")), content_type=content_type)


def _url(request: Request, name: str, *args: Any) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


def _collection_link(request: Request, collection_id: str) -> dict[str, str]:
    return {
        "rel": "collection",
        "type": JSON,
        "href": _url(request, "ogc:collection", collection_id),
    }


class FormatInputSerializer(serializers.Serializer):
    f = serializers.ChoiceField(
        choices=["json"], required=False, default="json", help_text="json (the only format)"
    )


class OgcApi(PublicLayerApi):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        FormatInputSerializer(data=request.query_params).is_valid(raise_exception=True)


class LandingPageApi(OgcApi):
    @extend_schema(
        operation_id="ogc_landing_page", responses={(200, JSON): OpenApiTypes.OBJECT}, tags=TAGS
    )
    def get(self, request: Request) -> HttpResponse:
        return _json(
            {
                "title": "geo311",
                "description": "311 service requests and the city's boundary layers",
                "links": [
                    {"rel": "self", "type": JSON, "href": _url(request, "ogc:landing")},
                    {
                        "rel": "service-desc",
                        "type": OPENAPI,
                        "title": "OpenAPI 3.0",
                        "href": _url(request, "schema") + "?format=json",
                    },
                    {"rel": "service-doc", "type": "text/html", "href": _url(request, "api-docs")},
                    {"rel": "conformance", "type": JSON, "href": _url(request, "ogc:conformance")},
                    {"rel": "data", "type": JSON, "href": _url(request, "ogc:collections")},
                ],
            }
        )


class ConformanceApi(OgcApi):
    @extend_schema(
        operation_id="ogc_conformance", responses={(200, JSON): OpenApiTypes.OBJECT}, tags=TAGS
    )
    def get(self, request: Request) -> HttpResponse:
        return _json({"conformsTo": CONFORMANCE})


def _time(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).strftime(features.UTC_SECONDS)


def _extent(extent: Extent, *, temporal: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "spatial": {"bbox": [list(extent.bbox)] if extent.bbox else [], "crs": CRS84}
    }
    if temporal:
        body["temporal"] = {
            "interval": [[_time(extent.start), _time(extent.end)]],
            "trs": GREGORIAN,
        }
    return body


def _collection(
    request: Request, *, id: str, title: str, description: str, extent: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id,
        "title": title,
        "description": description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": extent,
        "links": [
            {"rel": "self", "type": JSON, "href": _url(request, "ogc:collection", id)},
            {"rel": "items", "type": GEOJSON, "href": _url(request, "ogc:items", id)},
        ],
    }


def _requests_collection(request: Request) -> dict[str, Any]:
    return _collection(
        request,
        id=REQUESTS,
        title="Service requests",
        description="311 requests with their public fields; requests of sensitive categories "
        "at the centre of their grid cell (location_precision_m) and without an address",
        extent=_extent(features.request_extent(), temporal=True),
    )


def _layer_collection(request: Request, layer: BoundaryLayer) -> dict[str, Any]:
    return _collection(
        request,
        id=layer.slug,
        title=layer.name,
        description=layer.description or f"{layer.kind} boundaries, version {layer.version}",
        extent=_extent(layer.extent, temporal=False),
    )


class CollectionsApi(OgcApi):
    @extend_schema(
        operation_id="ogc_collections", responses={(200, JSON): OpenApiTypes.OBJECT}, tags=TAGS
    )
    def get(self, request: Request) -> HttpResponse:
        collections = [_requests_collection(request)]
        # A boundary layer called "requests" would be hidden by the requests collection.
        collections += [
            _layer_collection(request, layer)
            for layer in features.boundary_layers()
            if layer.slug != REQUESTS
        ]
        return _json(
            {
                "links": [{"rel": "self", "type": JSON, "href": _url(request, "ogc:collections")}],
                "collections": collections,
            }
        )


def _layer(collection_id: str) -> BoundaryLayer:
    layers = features.boundary_layers(slug=collection_id)
    if not layers:
        raise NotFound({"collectionId": f"no collection '{collection_id}'"})
    return layers[0]


class CollectionApi(OgcApi):
    @extend_schema(
        operation_id="ogc_collection", responses={(200, JSON): OpenApiTypes.OBJECT}, tags=TAGS
    )
    def get(self, request: Request, collection_id: str) -> HttpResponse:
        if collection_id == REQUESTS:
            return _json(_requests_collection(request))
        return _json(_layer_collection(request, _layer(collection_id)))


class DatetimeField(serializers.CharField):
    """OGC ``datetime``: an instant, or an interval ``start/end`` with ``..`` (or nothing)
    for an open end. Gives (start, end), inclusive, either None."""

    def to_internal_value(  # type: ignore[override]
        self, data: Any
    ) -> tuple[dt.datetime | None, dt.datetime | None]:
        text = super().to_internal_value(data)
        try:
            if "/" not in text:
                return parse_moment(text, end=False), parse_moment(text, end=True)
            first, last = text.split("/", 1)
            start = None if first in ("", "..") else parse_moment(first, end=False)
            end = None if last in ("", "..") else parse_moment(last, end=True)
        except (ValueError, OverflowError):
            raise serializers.ValidationError(
                "an RFC 3339 date-time or interval, e.g. 2024-05-01T00:00:00Z/.. "
                "or 2024-05-01/2024-05-31"
            ) from None
        if start and end and start > end:
            raise serializers.ValidationError("the interval ends before it starts")
        return start, end


class ItemsInputSerializer(FormatInputSerializer):
    bbox = BboxField(required=False, help_text="minx,miny,maxx,maxy in degrees (CRS84)")
    limit = serializers.IntegerField(
        required=False, default=OGC_DEFAULT_LIMIT, min_value=1, max_value=MAX_LIMIT
    )
    offset = serializers.IntegerField(required=False, default=0, min_value=0)
    datetime = DatetimeField(
        required=False, help_text="requests only: requested_datetime instant or interval"
    )


class ItemsApi(OgcApi):
    @extend_schema(
        operation_id="ogc_items",
        parameters=[
            ItemsInputSerializer,
            OpenApiParameter("collection_id", str, OpenApiParameter.PATH),
        ],
        responses={(200, GEOJSON): OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    def get(self, request: Request, collection_id: str) -> HttpResponse:
        params = ItemsInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        limit, offset = data["limit"], data["offset"]
        if collection_id == REQUESTS:
            start, end = data.get("datetime", (None, None))
            page = features.requests_page(
                filters=RequestFilters(bbox=data.get("bbox"), start=start, end=end),
                limit=limit,
                offset=offset,
                count=True,
            )
        else:
            _layer(collection_id)
            page = features.boundaries_page(
                slug=collection_id, bbox=data.get("bbox"), limit=limit, offset=offset, count=True
            )
        links = [
            {"rel": "self", "type": GEOJSON, "href": _with(request)},
            {
                "rel": "collection",
                "type": JSON,
                "href": _url(request, "ogc:collection", collection_id),
            },
        ]
        if page.more:
            links.append(
                {"rel": "next", "type": GEOJSON, "href": _with(request, offset=offset + limit)}
            )
        if offset:
            previous = max(offset - limit, 0)
            links.append(
                {"rel": "prev", "type": GEOJSON, "href": _with(request, offset=previous or None)}
            )
        body = features.feature_collection(
            page,
            numberMatched=page.matched,
            numberReturned=page.returned,
            timeStamp=_time(timezone.now()),
            links=links,
        )
        return geojson_response(body, links=links)


class ItemApi(OgcApi):
    @extend_schema(
        operation_id="ogc_item", responses={(200, GEOJSON): OpenApiTypes.OBJECT}, tags=TAGS
    )
    def get(self, request: Request, collection_id: str, feature_id: str) -> HttpResponse:
        if collection_id == REQUESTS:
            feature = features.request_feature(public_id=feature_id)
        else:
            _layer(collection_id)
            feature = (
                features.boundary_feature(slug=collection_id, fid=int(feature_id))
                if feature_id.isdigit()
                else None
            )
        if feature is None:
            raise NotFound({"featureId": f"no feature '{feature_id}' in '{collection_id}'"})
        feature["links"] = [
            {
                "rel": "self",
                "type": GEOJSON,
                "href": _url(request, "ogc:item", collection_id, feature_id),
            },
            {
                "rel": "collection",
                "type": JSON,
                "href": _url(request, "ogc:collection", collection_id),
            },
        ]
        return _json(feature, GEOJSON)
