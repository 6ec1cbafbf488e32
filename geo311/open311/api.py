"""Open311 GeoReport v2: one small view per operation, each with its own input serializer.

Every view answers in the format of its path suffix (``.xml`` or ``.json``), errors included, and
accepts ``jurisdiction_id``. Reads go through ``geo311.selectors``, the one write through
``geo311.services.request_create``.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from geo311 import selectors
from geo311.cache import CityConfig, city_config, city_config_unchecked
from geo311.duplicates import duplicate_candidates, policy_for
from geo311.models import ServiceCategory, ServiceRequest
from geo311.notifications.services import reporter_preference_set
from geo311.services import request_create, request_update_from_external, status_for_update

from . import serializers as s
from .auth import api_key_authenticate
from .errors import bad_request, exception_handler, forbidden, from_django, not_found
from .renderers import Open311JSONRenderer, Open311XMLRenderer, SuffixNegotiation

# When this API last changed in a way clients should know about (discovery's changeset).
CHANGESET = "2026-11-27T00:00:00Z"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# A request is a few kB of form fields (description ≤ 4000 characters); photos go by media_url.
MAX_POST_BYTES = 256 * 1024

ERRORS = OpenApiResponse(s.ErrorSerializer(many=True), description="list of {code, description}")


def documented(
    operation_id: str, summary: str, description: str, parameters: list, responses: dict
) -> Any:
    """extend_schema for an Open311 operation: the format is the path suffix ``{fmt}``, not a
    ``?format=`` parameter."""
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        tags=["open311"],
        parameters=[
            *parameters,
            OpenApiParameter("fmt", str, OpenApiParameter.PATH, enum=["json", "xml"]),
            OpenApiParameter("format", exclude=True),
        ],
        responses=responses,
    )


def present(data: Any) -> QueryDict:
    """``data`` without its empty parameters: Open311 reads an empty parameter as an absent one."""
    kept = QueryDict(mutable=True)
    if not hasattr(data, "lists"):
        return kept
    for key, values in data.lists():
        values = [v for v in values if not isinstance(v, str) or v.strip()]
        if values:
            kept.setlist(key, values)
    return kept


class Open311Api(APIView):
    renderer_classes = [Open311JSONRenderer, Open311XMLRenderer]
    parser_classes = [FormParser, MultiPartParser]
    content_negotiation_class = SuffixNegotiation
    authentication_classes: list = []
    permission_classes: list = []
    metadata_class = None
    # XML element names: the document's root and, for lists, each item.
    xml_root = ""
    xml_item = ""
    form: QueryDict

    def get_exception_handler(self) -> Any:
        return exception_handler

    def get_format_suffix(self, **kwargs: Any) -> str | None:
        # Not DRF's "format" kwarg: schema generators skip paths ending in ".{format}".
        return kwargs.get("fmt")

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > MAX_POST_BYTES:
                raise bad_request("", f"the request body is larger than {MAX_POST_BYTES} bytes")
        # The form without its empty parameters, read once (POST only).
        self.form = present(request.data) if request.method == "POST" else QueryDict()
        jurisdiction = request.query_params.get("jurisdiction_id", "").strip()
        if not jurisdiction and request.method == "POST":
            jurisdiction = str(self.form.get("jurisdiction_id", "")).strip()
        if jurisdiction and jurisdiction != settings.GEO311_JURISDICTION_ID:
            raise not_found(
                "jurisdiction_id",
                f"this server answers for {settings.GEO311_JURISDICTION_ID}, not '{jurisdiction}'",
            )


def _path_value(name: str, value: str) -> str:
    """A code, id or token from the path. PostgreSQL text cannot hold NUL, so a %00 in the
    address would be a server error; no such thing exists, so it is a 404."""
    if "\x00" in value:
        raise not_found(name, "not found")
    return value


class DiscoveryApi(Open311Api):
    xml_root = "discovery"

    @documented(
        "open311_discovery",
        "Discovery",
        "Where the endpoints are, in which formats, and whom to ask for an api_key.",
        [s.JurisdictionInputSerializer],
        {200: s.DiscoverySerializer, 404: ERRORS},
    )
    def get(self, request: Request, fmt: str) -> Response:
        services = request.build_absolute_uri(reverse("open311:services", args=["json"]))
        discovery = {
            "changeset": CHANGESET,
            "contact": settings.GEO311_OPEN311_CONTACT,
            "key_service": settings.GEO311_OPEN311_KEY_SERVICE,
            "endpoints": [
                {
                    "specification": SPECIFICATION,
                    "url": services.rsplit("/", 1)[0],
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return Response(s.DiscoverySerializer(discovery).data)


class ServiceListApi(Open311Api):
    xml_root, xml_item = "services", "service"

    @documented(
        "open311_services",
        "Services",
        "The services (request categories) residents can report; metadata=true: it has questions.",
        [s.JurisdictionInputSerializer],
        {200: s.ServiceSerializer(many=True), 404: ERRORS},
    )
    def get(self, request: Request, fmt: str) -> Response:
        return Response(s.ServiceSerializer(selectors.category_list(), many=True).data)


class ServiceDefinitionApi(Open311Api):
    xml_root = "service_definition"

    @documented(
        "open311_service_definition",
        "Service definition",
        "A service's questions (attributes), in order, with the choices of list questions.",
        [s.JurisdictionInputSerializer],
        {200: s.ServiceDefinitionSerializer, 404: ERRORS},
    )
    def get(self, request: Request, service_code: str, fmt: str) -> Response:
        try:
            category = selectors.category_definition_get(
                service_code=_path_value("service_code", service_code)
            )
        except ServiceCategory.DoesNotExist:
            raise not_found("service_code", f"no service {service_code}") from None
        return Response(s.ServiceDefinitionSerializer(category).data)


class RequestListApi(Open311Api):
    xml_root, xml_item = "service_requests", "request"

    @documented(
        "open311_requests_list",
        "Requests",
        "Requests, newest first. Without dates: the last 90 days, at most the newest 1000; "
        "pages of page_size (default 50, at most 500). start_date and end_date may be at most "
        "90 days apart. extended_attributes only with extensions=true.",
        [s.RequestListInputSerializer],
        {200: s.RequestExtendedSerializer(many=True), 400: ERRORS, 404: ERRORS},
    )
    def get(self, request: Request, fmt: str) -> Response:
        params = s.RequestListInputSerializer(data=present(request.query_params))
        params.is_valid(raise_exception=True)
        filters = dict(params.validated_data)
        offset, limit = filters.pop("offset"), filters.pop("limit")
        requests = selectors.request_list(**filters)[offset:limit]
        output = s.RequestExtendedSerializer if filters["extended"] else s.RequestSerializer
        return Response(output(requests, many=True).data)


class RequestCreateApi(Open311Api):
    xml_root, xml_item = "service_requests", "request"

    @documented(
        "open311_requests_create",
        "File a request",
        "Form-encoded. One location: lat and long, address_string or address_id. Answers to "
        "the service's questions as attribute[CODE]=value, a multivaluelist as "
        "attribute[CODE][]=v1&attribute[CODE][]=v2. Batch services answer with a token "
        "instead of the service_request_id.",
        [],
        {201: s.RequestCreatedSerializer(many=True), 400: ERRORS, 403: ERRORS, 404: ERRORS},
    )
    @extend_schema(request={"application/x-www-form-urlencoded": s.RequestCreateInputSerializer})
    def post(self, request: Request, fmt: str) -> Response:
        # Decided with this process's copy of the configuration, which routing checks in its
        # query: a copy found out of date there, or one that led to any error, is checked (one
        # query) and, when it was out of date, the request is decided again from the start.
        # Nothing is written before the check.
        config = city_config_unchecked()
        for _ in range(2):  # a third edit in the meantime would be a very busy admin
            try:
                return self.create(config)
            except Exception:
                current = city_config()
                if current is config:
                    raise
                config = current
        return self.create(config)

    def create(self, config: CityConfig) -> Response:
        data = self.form
        api_key_authenticate(key=str(data.get("api_key", "")), config=config)
        uploads = [key for key, value in data.items() if not isinstance(value, str)]
        if uploads:
            raise bad_request(uploads[0], "files are not taken here; send a media_url")
        params = s.RequestCreateInputSerializer(data=data, context={"config": config})
        params.is_valid(raise_exception=True)
        notify = params.validated_data.pop("notify")
        try:
            created = request_create(**params.validated_data, config=config)
            if notify:
                reporter_preference_set(request=created, notify=notify)
        except DjangoValidationError as exc:
            raise from_django(exc, names={"location": params.location_parameter}) from None
        return Response(s.RequestCreatedSerializer([created], many=True).data, status=201)


class RequestsApi(RequestListApi, RequestCreateApi):
    """``/requests.{fmt}``: GET lists (``RequestListApi``), POST files
    (``RequestCreateApi``); Open311 puts both operations at one address."""


class RequestDetailApi(Open311Api):
    xml_root, xml_item = "service_requests", "request"

    @documented(
        "open311_request",
        "One request",
        "One request, as a one-item list.",
        [s.ExtensionsInputSerializer],
        {200: s.RequestExtendedSerializer(many=True), 404: ERRORS},
    )
    def get(self, request: Request, service_request_id: str, fmt: str) -> Response:
        params = s.ExtensionsInputSerializer(data=present(request.query_params))
        params.is_valid(raise_exception=True)
        extended = params.validated_data["extensions"]
        try:
            found = selectors.request_get(
                public_id=_path_value("service_request_id", service_request_id), extended=extended
            )
        except ServiceRequest.DoesNotExist:
            raise not_found("service_request_id", f"no request {service_request_id}") from None
        output = s.RequestExtendedSerializer if extended else s.RequestSerializer
        return Response(output([found], many=True).data)


class TokenApi(Open311Api):
    xml_root, xml_item = "service_requests", "request"

    @documented(
        "open311_token",
        "Request id from a token",
        "The service_request_id a token (a batch service's answer to POST) stands for.",
        [s.JurisdictionInputSerializer],
        {200: s.TokenSerializer(many=True), 404: ERRORS},
    )
    def get(self, request: Request, token: str, fmt: str) -> Response:
        try:
            found = selectors.request_by_token_get(token=_path_value("token", token))
        except ServiceRequest.DoesNotExist:
            raise not_found("token", f"no request for token {token}") from None
        return Response(s.TokenSerializer([found], many=True).data)


class RequestUpdatesApi(Open311Api):
    xml_root, xml_item = "service_request_updates", "request_update"

    @documented(
        "open311_request_updates",
        "Request updates",
        "Public status changes of every request, oldest first (the FixMyStreet updates feed). "
        "Without dates: the last 90 days; start_date and end_date at most 90 days apart.",
        [s.RequestUpdatesInputSerializer],
        {200: s.RequestUpdateSerializer(many=True), 400: ERRORS, 404: ERRORS},
    )
    def get(self, request: Request, fmt: str) -> Response:
        params = s.RequestUpdatesInputSerializer(data=present(request.query_params))
        params.is_valid(raise_exception=True)
        window = dict(params.validated_data)
        offset, limit = window.pop("offset"), window.pop("limit")
        updates = selectors.request_updates(**window)[offset:limit]
        return Response(s.RequestUpdateSerializer(updates, many=True).data)


class RequestUpdateCreateApi(Open311Api):
    xml_root, xml_item = "service_request_updates", "request_update"

    @documented(
        "open311_request_updates_create",
        "Post a request update",
        "Form-encoded, from an external system whose api_key may post updates (a work-order "
        "system): a new status (a city status code; checked against the city's transitions) "
        "or, without one, a public note. update_id is your own id for the update: the same id "
        "is refused the second time. Answers with the update as the updates feed lists it.",
        [],
        {201: s.RequestUpdateSerializer(many=True), 400: ERRORS, 403: ERRORS, 404: ERRORS},
    )
    @extend_schema(
        request={"application/x-www-form-urlencoded": s.RequestUpdateCreateInputSerializer}
    )
    def post(self, request: Request, fmt: str) -> Response:
        data = present(request.data)
        api_key = api_key_authenticate(key=str(data.get("api_key", "")), config=city_config())
        params = s.RequestUpdateCreateInputSerializer(data=data)
        params.is_valid(raise_exception=True)
        update = params.validated_data
        public_id = _path_value("service_request_id", update["service_request_id"])
        try:
            found = ServiceRequest.objects.select_related("status").get(public_id=public_id)
        except ServiceRequest.DoesNotExist:
            raise not_found("service_request_id", f"no request {public_id}") from None
        try:
            status = status_for_update(code=update["status"]) if "status" in update else None
            event = request_update_from_external(
                request=found,
                api_key=api_key,
                update_id=update["update_id"],
                status=status,
                description=update["description"],
                media_url=update["media_url"],
            )
        except PermissionDenied as exc:
            raise forbidden(str(exc)) from None
        except DjangoValidationError as exc:
            raise from_django(
                exc, names={"public_note": "description", "photo_url": "media_url"}
            ) from None
        event = selectors.request_updates().get(pk=event.pk)
        return Response(s.RequestUpdateSerializer([event], many=True).data, status=201)


class RequestUpdatesEndpointApi(RequestUpdatesApi, RequestUpdateCreateApi):
    """``/servicerequestupdates.{fmt}``: GET lists (``RequestUpdatesApi``), POST takes one
    from an external system (``RequestUpdateCreateApi``)."""


class RequestNearbyApi(Open311Api):
    xml_root, xml_item = "nearby_requests", "request"

    @documented(
        "open311_request_nearby",
        "Requests a request may repeat",
        "Extension: the earlier requests this one may repeat, best first, each with its score "
        "(0-1), whether it reaches the likely threshold and the reasons in plain words (the "
        "duplicate search of filing, as of the request's own time). No reporter details.",
        [s.NearbyInputSerializer],
        {200: s.NearbyRequestSerializer(many=True), 404: ERRORS},
    )
    def get(self, request: Request, service_request_id: str, fmt: str) -> Response:
        params = s.NearbyInputSerializer(data=present(request.query_params))
        params.is_valid(raise_exception=True)
        public_id = _path_value("service_request_id", service_request_id)
        try:
            found = ServiceRequest.objects.select_related("category").get(public_id=public_id)
        except ServiceRequest.DoesNotExist:
            raise not_found("service_request_id", f"no request {public_id}") from None
        candidates = duplicate_candidates(
            category=found.category,
            point=found.location,
            at=found.requested_at,
            address=found.address,
            description=found.description,
            public_id=found.public_id,
            exclude_id=found.pk,
            limit=params.validated_data["limit"],
        )
        likely = policy_for(category=found.category).likely_score
        return Response(
            s.NearbyRequestSerializer(candidates, many=True, context={"likely_score": likely}).data
        )


class CoverageApi(Open311Api):
    xml_root = "coverage"

    @documented(
        "open311_coverage",
        "Coverage",
        "Is a point inside the jurisdiction, which areas is it in, and which department (and "
        "team) would take each service there, or why none would.",
        [s.CoverageInputSerializer],
        {200: s.CoverageSerializer, 400: ERRORS, 404: ERRORS},
    )
    def get(self, request: Request, fmt: str) -> Response:
        params = s.CoverageInputSerializer(data=present(request.query_params))
        params.is_valid(raise_exception=True)
        point = params.point()
        coverage = selectors.coverage_at(point=point)
        return Response(s.CoverageSerializer(coverage, context={"point": point}).data)


@extend_schema(exclude=True)
class UnknownEndpointApi(Open311Api):
    """Any other address under /open311/v2/: a 404 in the spec's format, not an HTML page."""

    def get(self, request: Request, path: str, fmt: str | None = None) -> Response:
        raise not_found("", f"no Open311 endpoint {request.path}")

    post = put = patch = delete = get
