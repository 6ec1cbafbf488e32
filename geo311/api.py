"""geo311's own request API (Open311 lives in ``geo311.open311``): one small view per operation,
each with its own input and output serializers."""

from typing import Any

from django.contrib.gis.geos import Point
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .duplicates import Candidate, nearby_candidates
from .models import ServiceCategory
from .open311.serializers import W3CDateTimeField

MAX_CANDIDATES = 20


class NearbyRequestsApi(APIView):
    """Earlier requests that a report about to be filed may repeat, best first, each with its
    score (0-1) and the reasons in plain words: for the map to show before submit.

    Public and free of personal data: no reporter fields, no description, no token.
    """

    # Public and hot (the map asks as the pin moves): no session lookup, JSON only.
    authentication_classes: list = []
    renderer_classes = [JSONRenderer]

    class InputSerializer(serializers.Serializer):
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

    class CandidateSerializer(serializers.Serializer):
        public_id = serializers.CharField(source="request.public_id")
        service_code = serializers.CharField(source="request.category.service_code")
        service_name = serializers.CharField(source="request.category.name")
        status = serializers.CharField(source="open311_status", help_text="open or closed")
        requested_datetime = W3CDateTimeField(source="request.requested_at")
        address = serializers.CharField(source="request.address")
        lat = serializers.FloatField(source="request.location.y")
        lon = serializers.FloatField(source="request.location.x")
        distance_m = serializers.SerializerMethodField()
        score = serializers.SerializerMethodField()
        likely = serializers.SerializerMethodField(help_text="at or above the likely threshold")
        reasons = serializers.ListField(child=serializers.CharField())

        def get_distance_m(self, candidate: Candidate) -> float:
            return round(candidate.features.distance_m, 1)

        def get_score(self, candidate: Candidate) -> float:
            return round(candidate.score, 3)

        def get_likely(self, candidate: Candidate) -> bool:
            return candidate.score >= self.context["likely_score"]

    class OutputSerializer(serializers.Serializer):
        lat = serializers.FloatField()
        lon = serializers.FloatField()
        service_code = serializers.CharField()
        radius_m = serializers.FloatField()
        window_days = serializers.IntegerField()
        likely_score = serializers.FloatField()
        candidates = serializers.ListField(child=serializers.DictField())

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
        candidates = self.CandidateSerializer(
            nearby.candidates, many=True, context={"likely_score": policy.likely_score}
        ).data
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
