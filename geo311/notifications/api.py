"""The public API of notifications: subscribing to area alerts (one view per operation)."""

from typing import Any

from django.conf import settings
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from boundaries.models import Layer
from geo311.models import ServiceCategory

from . import services
from .models import Frequency


class AreaSubscriptionCreateApi(APIView):
    """Be told of new reports in a boundary (``layer`` + ``boundary_code``, e.g. a ward) or
    within ``radius_m`` metres of a point, for some categories (none: all), at once or in a
    daily digest. Public: a confirmation email is sent first, and nothing else until the link
    in it is followed. The answer is the same whether or not the address already subscribed."""

    authentication_classes: list = []
    renderer_classes = [JSONRenderer]

    @extend_schema_serializer(component_name="AreaSubscriptionInput")
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        layer = serializers.SlugField(required=False, help_text="boundary layer slug, e.g. wards")
        boundary_code = serializers.CharField(required=False, max_length=100)
        lat = serializers.FloatField(required=False, min_value=-90, max_value=90)
        lon = serializers.FloatField(required=False, min_value=-180, max_value=180)
        radius_m = serializers.IntegerField(required=False, min_value=10, max_value=10_000)
        service_codes = serializers.ListField(
            child=serializers.CharField(max_length=64), required=False, default=list
        )
        frequency = serializers.ChoiceField(
            choices=Frequency.choices, required=False, default=Frequency.IMMEDIATE
        )
        language = serializers.ChoiceField(
            choices=sorted({settings.LANGUAGE_CODE, *(code for code, _ in settings.LANGUAGES)}),
            required=False,
            default=settings.LANGUAGE_CODE,
            help_text="the language of the alert emails",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            boundary = "layer" in attrs or "boundary_code" in attrs
            circle = "lat" in attrs or "lon" in attrs or "radius_m" in attrs
            if boundary == circle:
                raise serializers.ValidationError(
                    {"layer": "give layer and boundary_code, or lat, lon and radius_m"}
                )
            if boundary:
                if not attrs.get("layer") or not attrs.get("boundary_code"):
                    raise serializers.ValidationError(
                        {"boundary_code": "give both layer and boundary_code"}
                    )
                layer = Layer.objects.filter(slug=attrs["layer"]).first()
                if layer is None:
                    raise serializers.ValidationError({"layer": f"no layer {attrs['layer']}"})
                attrs["layer"] = layer
            elif not all(k in attrs for k in ("lat", "lon", "radius_m")):
                raise serializers.ValidationError({"radius_m": "give lat, lon and radius_m"})
            codes = attrs.pop("service_codes")
            categories = list(ServiceCategory.objects.filter(service_code__in=codes, active=True))
            unknown = sorted(set(codes) - {c.service_code for c in categories})
            if unknown:
                raise serializers.ValidationError(
                    {"service_codes": f"no service {', '.join(unknown)}"}
                )
            attrs["categories"] = categories
            return attrs

    @extend_schema_serializer(component_name="AreaSubscriptionOutput")
    class OutputSerializer(serializers.Serializer):
        detail = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer})
    def post(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        center = None
        if "lat" in data:
            center = Point(data.pop("lon"), data.pop("lat"), srid=4326)
        try:
            services.area_subscription_create(center=center, **data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        body = {"detail": "check your email: the alert starts when you confirm it"}
        return Response(self.OutputSerializer(body).data, status=202)
