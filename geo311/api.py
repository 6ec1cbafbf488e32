"""geo311's own request API (Open311 lives in ``geo311.open311``): one small view per operation,
each with its own input and output serializers."""

from collections.abc import Iterable
from typing import Any

from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .duplicates import Candidate, nearby_candidates
from .models import Follower, FollowerUpdates, ServiceCategory, ServiceRequest
from .open311.serializers import ShallowFieldsMixin, W3CDateTimeField
from .privacy import (
    public_address_of,
    public_distance_m,
    public_lonlat,
    public_reasons,
)

MAX_CANDIDATES = 20


class FirstRendererNegotiation(BaseContentNegotiation):
    """For a view with one renderer: that renderer, whatever the Accept header asks (DRF's own
    negotiation would parse the header to answer 406 instead of the only format there is)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> Any:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> Any:
        renderer = next(iter(renderers))
        return (renderer, renderer.media_type)


class NearbyCandidateSerializer(serializers.Serializer):
    """The shape of one candidate, for the API schema; ``_candidate_out`` writes them
    (plain dicts: a serializer per candidate cost as much as the query)."""

    public_id = serializers.CharField()
    service_code = serializers.CharField()
    service_name = serializers.CharField()
    status = serializers.CharField(help_text="open or closed")
    requested_datetime = W3CDateTimeField()
    address = serializers.CharField(help_text="blank for a sensitive category")
    lat = serializers.FloatField()
    lon = serializers.FloatField()
    distance_m = serializers.FloatField()
    score = serializers.FloatField(help_text="0-1")
    likely = serializers.BooleanField(help_text="at or above the likely threshold")
    reasons = serializers.ListField(child=serializers.CharField())


class NearbyRequestsApi(APIView):
    """Earlier requests that a report about to be filed may repeat, best first, each with its
    score (0-1) and the reasons in plain words: for the map to show before submit.

    Public and free of personal data: no reporter fields, no description, no token.
    """

    # Public and hot (the map asks as the pin moves): no session lookup, JSON only.
    authentication_classes: list = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = FirstRendererNegotiation

    class InputSerializer(ShallowFieldsMixin, serializers.Serializer):
        lat = serializers.FloatField(min_value=-90, max_value=90)
        lon = serializers.FloatField(min_value=-180, max_value=180)
        service_code = serializers.CharField(max_length=64)
        address = serializers.CharField(
            required=False, allow_blank=True, max_length=300, help_text="street line, if known"
        )
        description = serializers.CharField(
            required=False, allow_blank=True, max_length=4000, help_text="what the report says"
        )
        limit = serializers.IntegerField(
            required=False, default=5, min_value=1, max_value=MAX_CANDIDATES
        )

    class OutputSerializer(serializers.Serializer):
        lat = serializers.FloatField()
        lon = serializers.FloatField()
        service_code = serializers.CharField()
        radius_m = serializers.FloatField()
        window_days = serializers.IntegerField()
        likely_score = serializers.FloatField()
        candidates = serializers.ListField(child=NearbyCandidateSerializer())

    @extend_schema(parameters=[InputSerializer], responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data: dict[str, Any] = params.validated_data
        try:
            # One query: the category (active, by code), its policy and the candidates.
            nearby = nearby_candidates(
                service_code=data["service_code"],
                point=Point(data["lon"], data["lat"], srid=4326),
                address=data.get("address", ""),
                description=data.get("description", ""),
                limit=data["limit"],
            )
        except ServiceCategory.DoesNotExist as exc:
            raise serializers.ValidationError({"service_code": [str(exc)]}) from exc
        policy = nearby.policy
        candidates = [
            _candidate_out(c, likely_score=policy.likely_score) for c in nearby.candidates
        ]
        return Response(
            {
                "lat": data["lat"],
                "lon": data["lon"],
                "service_code": nearby.service_code,
                "radius_m": policy.radius_m,
                "window_days": policy.window_days,
                "likely_score": policy.likely_score,
                "candidates": candidates,
            }
        )


_DATETIME = W3CDateTimeField()


def _candidate_out(candidate: Candidate, *, likely_score: float) -> dict[str, Any]:
    """One nearby candidate as the public sees it (``NearbyCandidateSerializer``):
    a sensitive category's request at its cell centre, without its address, its distance
    rounded to the grid and no address reason."""
    request = candidate.request
    sensitive = bool(request.category.sensitive)
    lon, lat = public_lonlat(candidate.lon, candidate.lat, sensitive)
    return {
        "public_id": request.public_id,
        "service_code": request.category.service_code,
        "service_name": request.category.name,
        "status": candidate.open311_status,
        "requested_datetime": _DATETIME.to_representation(request.requested_at),
        "address": public_address_of(request),
        "lat": lat,
        "lon": lon,
        "distance_m": public_distance_m(candidate.features.distance_m, sensitive),
        "score": round(candidate.score, 3),
        "likely": candidate.score >= likely_score,
        "reasons": public_reasons(candidate.reasons, sensitive),
    }


class FollowersOutputSerializer(serializers.Serializer):
    """How many follow a request; never who."""

    service_request_id = serializers.CharField(help_text="the request followed (the original)")
    followers = serializers.IntegerField()


def _public_request(public_id: str) -> ServiceRequest:
    try:
        return ServiceRequest.objects.select_related("duplicate_of").get(public_id=public_id)
    except ServiceRequest.DoesNotExist:
        raise NotFound({"service_request_id": f"no request {public_id}"}) from None


class FollowRequestApi(APIView):
    """Follow a request already reported instead of filing it again: be told of its progress
    by email or SMS. A merged duplicate is followed through its original. Public; the answer
    says how many follow it, never who (nor whether this contact followed before)."""

    authentication_classes: list = []
    renderer_classes = [JSONRenderer]

    @extend_schema_serializer(component_name="FollowRequestInput")
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(required=False, default="", allow_blank=True)
        phone = serializers.CharField(required=False, default="", allow_blank=True, max_length=50)
        updates = serializers.ChoiceField(
            choices=FollowerUpdates.choices, required=False, default=FollowerUpdates.ALL
        )

    @extend_schema(request=InputSerializer, responses={201: FollowersOutputSerializer})
    def post(self, request: Request, public_id: str) -> Response:
        found = _public_request(public_id)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            follower = services.request_follow(request=found, **params.validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        followed = ServiceRequest.objects.get(pk=follower.request_id)
        body = {
            "service_request_id": followed.public_id,
            "followers": selectors.follower_count(request=followed),
        }
        return Response(FollowersOutputSerializer(body).data, status=201)


class FollowersApi(APIView):
    """How many people follow a request (public)."""

    authentication_classes: list = []
    renderer_classes = [JSONRenderer]

    @extend_schema(responses=FollowersOutputSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        found = _public_request(public_id)
        followed = found.duplicate_of or found
        body = {
            "service_request_id": followed.public_id,
            "followers": selectors.follower_count(request=followed),
        }
        return Response(FollowersOutputSerializer(body).data)


class UnsubscribeApi(APIView):
    """Stop following: the token comes in the link of every message (no account needed)."""

    authentication_classes: list = []
    renderer_classes = [JSONRenderer]

    @extend_schema_serializer(component_name="UnsubscribeInput")
    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=64)

    @extend_schema_serializer(component_name="UnsubscribeOutput")
    class OutputSerializer(serializers.Serializer):
        service_request_id = serializers.CharField(source="request.public_id")
        unsubscribed = serializers.BooleanField(default=True)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            follower = services.follower_unsubscribe(token=params.validated_data["token"])
        except Follower.DoesNotExist:
            raise NotFound({"token": "no follower with this token"}) from None
        return Response(self.OutputSerializer(follower).data)
