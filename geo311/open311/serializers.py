"""Open311 input (one serializer per operation) and output serializers.

Inputs: an empty parameter counts as absent (the views drop them before validation); every
error names the Open311 parameter. Outputs list their fields one by one: reporter contact
details are never among them.
"""

import datetime as dt
import re
from typing import Any

from django.conf import settings
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from geo311 import selectors
from geo311.addresses import AddressNotFound, address_get, address_resolve
from geo311.models import Channel, ServiceCategory, ServiceRequest, ServiceType, StatusEvent
from geo311.notifications.models import Notify
from geo311.notifications.services import reporter_preference_check
from geo311.privacy import (
    public_address_of,
    public_distance_m,
    public_location_of,
    public_reasons,
)
from geo311.services import Reporter, location_from_lat_long

from .errors import not_found

MAX_WINDOW = dt.timedelta(days=90)
DEFAULT_WINDOW_CAP = 1000
MAX_PAGE_SIZE = 500
MAX_RADIUS_M = 50_000
_ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
# "+05:00" arrives as " 05:00" when a client forgets to percent-encode the plus sign.
_UNENCODED_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


# --- fields ------------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.DATETIME)
class W3CDateTimeField(serializers.DateTimeField):
    """W3C date-time with its zone, in the city's time zone, to the second
    (``2026-11-26T14:03:00-06:00``). Input without a zone is read in the city's time zone."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        if isinstance(value, str):
            value = _UNENCODED_PLUS.sub(r"\1+\2", value.strip())
        return super().to_internal_value(value)

    def to_representation(self, value: dt.datetime | None) -> str | None:  # type: ignore[override]
        if value is None:
            return None
        return timezone.localtime(value).isoformat(timespec="seconds")


@extend_schema_field({"type": "string", "description": "comma-separated list"})
class CommaListField(serializers.CharField):
    """``a,b,c`` → ``["a", "b", "c"]`` (blanks dropped), optionally limited to ``choices``."""

    def __init__(self, *, choices: list[str] | None = None, max_items: int = 0, **kwargs: Any):
        self.choices = choices
        self.max_items = max_items
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[str]:  # type: ignore[override]
        text = super().to_internal_value(data)
        if "\x00" in text:
            raise serializers.ValidationError("Null characters are not allowed.")
        items = list(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
        if self.max_items and len(items) > self.max_items:
            raise serializers.ValidationError(f"at most {self.max_items} values")
        if self.choices is not None:
            wrong = [i for i in items if i not in self.choices]
            if wrong:
                raise serializers.ValidationError(
                    f"not one of {', '.join(self.choices)}: {', '.join(wrong)}"
                )
        return items


class ShallowFieldsMixin:
    """For serializers built on every request of a busy endpoint (POST /requests, the nearby
    search as the pin moves): DRF gives each instance a deep copy of every declared field (each
    rebuilt from its arguments, validators and all) so that an instance may change its fields.
    These never change theirs, and a plain field keeps no state but its binding to the
    instance, which DRF sets on the copy: a shallow copy serves.
    """

    _declared_fields: dict[str, serializers.Field]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = {}
        for name, field in self._declared_fields.items():
            # copy.copy, without its generic __reduce_ex__ round trip.
            clone = object.__new__(type(field))
            clone.__dict__.update(field.__dict__)
            fields[name] = clone
        return fields


# --- inputs ------------------------------------------------------------------------------------


class JurisdictionInputSerializer(serializers.Serializer):
    jurisdiction_id = serializers.CharField(
        required=False, help_text="Optional; this server answers for one jurisdiction"
    )


class ExtensionsInputSerializer(JurisdictionInputSerializer):
    extensions = serializers.BooleanField(
        required=False,
        default=False,
        help_text="true adds extended_attributes: areas, routing rule, status history, answers",
    )


class RequestListInputSerializer(ExtensionsInputSerializer):
    service_request_id = CommaListField(
        required=False,
        max_items=MAX_PAGE_SIZE,
        help_text="Comma-separated ids; when given, every other filter is ignored",
    )
    service_code = CommaListField(required=False, help_text="Comma-separated service codes")
    start_date = W3CDateTimeField(required=False, help_text="Earliest requested_datetime")
    end_date = W3CDateTimeField(required=False, help_text="Latest requested_datetime")
    status = CommaListField(required=False, choices=["open", "closed"], help_text="open, closed")
    updated_after = W3CDateTimeField(required=False)
    updated_before = W3CDateTimeField(required=False)
    page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=100_000)
    page_size = serializers.IntegerField(
        required=False, default=50, min_value=1, max_value=MAX_PAGE_SIZE
    )
    lat = serializers.FloatField(required=False, min_value=-90, max_value=90)
    long = serializers.FloatField(required=False, min_value=-180, max_value=180)
    radius = serializers.FloatField(
        required=False, min_value=1, max_value=MAX_RADIUS_M, help_text="metres around lat/long"
    )
    bbox = serializers.CharField(required=False, help_text="west,south,east,north in degrees")

    def validate_bbox(self, value: str) -> tuple[float, float, float, float]:
        try:
            west, south, east, north = (float(v) for v in value.split(","))
        except ValueError:
            raise serializers.ValidationError(
                "four numbers: west,south,east,north (degrees)"
            ) from None
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise serializers.ValidationError("needs west < east and south < north, in degrees")
        return west, south, east, north

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The selector's filters plus ``offset`` and ``limit`` (slice bounds)."""
        page, size = attrs["page"], attrs["page_size"]
        offset = (page - 1) * size
        extended = attrs["extensions"]
        if "service_request_id" in attrs:
            ids = attrs["service_request_id"]
            return {"public_ids": ids, "extended": extended, "offset": 0, "limit": len(ids)}

        codes = attrs.get("service_code")
        if codes:
            unknown = sorted(set(codes) - selectors.categories_known(service_codes=codes))
            if unknown:
                raise not_found("service_code", f"no service {', '.join(unknown)}")
        errors: dict[str, str] = {}
        for first, last in (("start_date", "end_date"), ("updated_after", "updated_before")):
            if first in attrs and last in attrs and attrs[first] > attrs[last]:
                errors[last] = f"must not be before {first}"
        start, end = attrs.get("start_date"), attrs.get("end_date")
        if start and end and end - start > MAX_WINDOW:
            errors["end_date"] = "must be at most 90 days after start_date"
        geo = [name for name in ("lat", "long", "radius") if name in attrs]
        if geo and len(geo) < 3:
            missing = [n for n in ("lat", "long", "radius") if n not in attrs]
            errors[missing[0]] = "lat, long and radius go together"
        if errors:
            raise serializers.ValidationError(errors)

        filters: dict[str, Any] = {
            "service_codes": codes,
            "open311_statuses": attrs.get("status"),
            "requested_from": start,
            "requested_to": end,
            "updated_from": attrs.get("updated_after"),
            "updated_to": attrs.get("updated_before"),
            "bbox": attrs.get("bbox"),
            "near": (Point(attrs["long"], attrs["lat"], srid=4326), attrs["radius"])
            if geo
            else None,
            "extended": extended,
            "offset": offset,
            "limit": offset + size,
        }
        dated = {"start_date", "end_date", "updated_after", "updated_before"} & set(attrs)
        if not dated:
            # Open311: with no dates, the last 90 days or the newest 1000, whichever is fewer.
            filters["requested_from"] = timezone.now() - MAX_WINDOW
            filters["limit"] = min(filters["limit"], DEFAULT_WINDOW_CAP)
            filters["offset"] = min(offset, DEFAULT_WINDOW_CAP)
        return filters


class RequestUpdatesInputSerializer(JurisdictionInputSerializer):
    start_date = W3CDateTimeField(required=False, help_text="Earliest update")
    end_date = W3CDateTimeField(required=False, help_text="Latest update")
    page = serializers.IntegerField(required=False, default=1, min_value=1, max_value=100_000)
    page_size = serializers.IntegerField(
        required=False, default=MAX_PAGE_SIZE, min_value=1, max_value=MAX_PAGE_SIZE
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start_date"), attrs.get("end_date")
        if start and end and start > end:
            raise serializers.ValidationError({"end_date": "must not be before start_date"})
        if start and end and end - start > MAX_WINDOW:
            raise serializers.ValidationError(
                {"end_date": "must be at most 90 days after start_date"}
            )
        if not start and not end:
            start = timezone.now() - MAX_WINDOW
        offset = (attrs["page"] - 1) * attrs["page_size"]
        return {"start": start, "end": end, "offset": offset, "limit": offset + attrs["page_size"]}


class CoverageInputSerializer(JurisdictionInputSerializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    long = serializers.FloatField(min_value=-180, max_value=180)

    def point(self) -> Point:
        return Point(self.validated_data["long"], self.validated_data["lat"], srid=4326)


class RequestUpdateCreateInputSerializer(JurisdictionInputSerializer):
    """POST /servicerequestupdates: an external system (a work-order system) reports progress
    on a request: a new status, or a note. ``update_id`` is the system's own id for the update:
    the same id is not accepted twice from one key."""

    api_key = serializers.CharField(help_text="A key allowed to post updates")
    service_request_id = serializers.CharField(max_length=64)
    update_id = serializers.CharField(max_length=100, help_text="Your own id for this update")
    status = serializers.CharField(
        required=False,
        max_length=64,
        help_text="A status code of the city (IN_PROGRESS for in-progress); none: a note",
    )
    description = serializers.CharField(
        required=False, default="", max_length=4000, help_text="Public note"
    )
    media_url = serializers.URLField(required=False, default="", max_length=1000)
    updated_datetime = W3CDateTimeField(
        required=False, help_text="Accepted (FixMyStreet sends it); the update is dated on arrival"
    )


class NearbyInputSerializer(JurisdictionInputSerializer):
    limit = serializers.IntegerField(required=False, default=5, min_value=1, max_value=20)


class RequestCreateInputSerializer(ShallowFieldsMixin, JurisdictionInputSerializer):
    """POST /requests: one location (lat+long, address_string or address_id), answers as
    ``attribute[CODE]=v`` (multivaluelist: ``attribute[CODE][]=v1&attribute[CODE][]=v2``)."""

    api_key = serializers.CharField(help_text="Key given to the client application")
    service_code = serializers.CharField(max_length=64)
    lat = serializers.CharField(required=False, help_text="WGS84 latitude")
    long = serializers.CharField(required=False, help_text="WGS84 longitude")
    address_string = serializers.CharField(required=False, max_length=300)
    address_id = serializers.CharField(required=False, max_length=100)
    email = serializers.EmailField(required=False, max_length=254)
    device_id = serializers.CharField(required=False, max_length=200)
    account_id = serializers.CharField(required=False, max_length=200)
    first_name = serializers.CharField(required=False, max_length=100)
    last_name = serializers.CharField(required=False, max_length=100)
    phone = serializers.CharField(required=False, max_length=50)
    description = serializers.CharField(
        required=False, default="", help_text="Plain text, at most 4000 characters"
    )
    media_url = serializers.URLField(required=False, default="", max_length=1000)
    channel = serializers.ChoiceField(
        choices=Channel.choices, required=False, default=Channel.API, help_text="extension"
    )
    notify = serializers.ChoiceField(
        choices=Notify.choices,
        required=False,
        help_text="extension: how the reporter hears of progress (default: email when an "
        "email is given; SMS only when asked)",
    )

    @property
    def location_parameter(self) -> str:
        """The parameter the location came from, to name it in errors about the place."""
        for name in ("address_string", "address_id"):
            if name in self.initial_data:
                return name
        return "lat/long"

    def validate_service_code(self, code: str) -> ServiceCategory:
        """The category from the city configuration the view passes in ``context["config"]``."""
        category = self.context["config"].categories.get(code)
        if category is None:
            raise not_found("service_code", f"no service {code}")
        return category

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of ``services.request_create``."""
        given = [
            name
            for name, present in (
                ("lat/long", "lat" in attrs or "long" in attrs),
                ("address_string", "address_string" in attrs),
                ("address_id", "address_id" in attrs),
            )
            if present
        ]
        if len(given) != 1:
            problem = "none was given" if not given else f"got {' and '.join(given)}"
            raise serializers.ValidationError(
                {
                    "lat/long": f"give one location: lat and long, address_string or address_id "
                    f"({problem})"
                }
            )
        if attrs.get("notify"):
            try:
                reporter_preference_check(
                    notify=attrs["notify"],
                    email=attrs.get("email", ""),
                    phone=attrs.get("phone", ""),
                )
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.message_dict) from None
        place: dict[str, Any] = {}
        try:
            if given == ["lat/long"]:
                place["location"] = location_from_lat_long(
                    lat=attrs.get("lat", ""), long=attrs.get("long", "")
                )
            else:
                found = (
                    address_resolve(address_string=attrs["address_string"])
                    if "address_string" in attrs
                    else address_get(address_id=attrs["address_id"])
                )
                place = {
                    "location": found.location,
                    "address": found.address,
                    "address_id": found.address_id,
                    "zipcode": found.zipcode,
                }
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        except AddressNotFound as exc:
            raise serializers.ValidationError({given[0]: str(exc)}) from None
        return {
            "category": attrs["service_code"],
            **place,
            "description": attrs["description"],
            "answers": answers_from_form(self.initial_data),
            "media_url": attrs["media_url"],
            "channel": attrs["channel"],
            "notify": attrs.get("notify", ""),
            "reporter": Reporter(
                first_name=attrs.get("first_name", ""),
                last_name=attrs.get("last_name", ""),
                email=attrs.get("email", ""),
                phone=attrs.get("phone", ""),
                device_id=attrs.get("device_id", ""),
                account_id=attrs.get("account_id", ""),
            ),
        }


def answers_from_form(data: QueryDict) -> dict[str, list[str]]:
    """``attribute[CODE]=v`` and ``attribute[CODE][]=v`` form fields → ``{CODE: [v, ...]}``."""
    answers: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for key in data:
        if not key.startswith("attribute"):
            continue
        match = _ATTRIBUTE_KEY.match(key)
        if match is None:
            errors[key] = "answers are sent as attribute[CODE]=value or attribute[CODE][]=value"
            continue
        values = [str(v) for v in data.getlist(key)]
        if any("\x00" in v for v in values):
            errors[key] = "null characters are not allowed"
            continue
        answers.setdefault(match.group(1), []).extend(values)
    if errors:
        raise serializers.ValidationError(errors)
    return answers


# --- outputs -----------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    code = serializers.IntegerField(help_text="the HTTP status")
    description = serializers.CharField(help_text="what is wrong, naming the parameter")


class ServiceSerializer(serializers.Serializer):
    service_code = serializers.CharField()
    service_name = serializers.CharField(source="name")
    description = serializers.CharField()
    metadata = serializers.BooleanField(source="has_questions", help_text="has questions")
    type = serializers.ChoiceField(choices=ServiceType.choices)
    keywords = serializers.CharField()
    group = serializers.CharField()


class AttributeValueSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()


class AttributeSerializer(serializers.Serializer):
    variable = serializers.BooleanField()
    code = serializers.CharField()
    datatype = serializers.CharField()
    # Declared fields leave the class (DRF's metaclass), so this does not shadow Field.required.
    required = serializers.BooleanField()  # type: ignore[assignment]
    datatype_description = serializers.CharField()
    order = serializers.IntegerField()
    description = serializers.CharField()
    values = AttributeValueSerializer(many=True, source="values.all")


class ServiceDefinitionSerializer(serializers.Serializer):
    service_code = serializers.CharField()
    attributes = AttributeSerializer(many=True, source="attributes.all")


class RequestSerializer(serializers.Serializer):
    """A request as Open311 shows it to anyone."""

    service_request_id = serializers.CharField(source="public_id")
    status = serializers.CharField(source="status.open311_status", help_text="open or closed")
    status_notes = serializers.SerializerMethodField()
    service_name = serializers.CharField(source="category.name")
    service_code = serializers.CharField(source="category.service_code")
    description = serializers.CharField()
    agency_responsible = serializers.CharField(source="department.name", allow_null=True)
    service_notice = serializers.CharField()
    requested_datetime = W3CDateTimeField(source="requested_at")
    updated_datetime = W3CDateTimeField(source="updated_at")
    expected_datetime = W3CDateTimeField(source="expected_at", allow_null=True)
    address = serializers.SerializerMethodField(help_text="empty for a sensitive category")
    address_id = serializers.SerializerMethodField(help_text="empty for a sensitive category")
    zipcode = serializers.CharField()
    lat = serializers.SerializerMethodField(
        help_text="a sensitive category's request: the centre of its grid cell"
    )
    long = serializers.SerializerMethodField(
        help_text="a sensitive category's request: the centre of its grid cell"
    )
    media_url = serializers.CharField()

    def get_status_notes(self, request: ServiceRequest) -> str:
        events = _public_events(request)
        return events[-1].note if events else ""

    # A sensitive category's request (a noise complaint) is published at its grid cell's
    # centre and without its street address (geo311.privacy); staff see both.
    def get_address(self, request: ServiceRequest) -> str:
        return public_address_of(request)

    def get_address_id(self, request: ServiceRequest) -> str:
        return "" if request.category.sensitive else request.address_id

    def get_lat(self, request: ServiceRequest) -> float:
        return public_location_of(request).y

    def get_long(self, request: ServiceRequest) -> float:
        return public_location_of(request).x


class AreaSerializer(serializers.Serializer):
    layer = serializers.CharField()
    code = serializers.CharField()
    name = serializers.CharField()


class NoteSerializer(serializers.Serializer):
    datetime = W3CDateTimeField(source="created_at")
    description = serializers.CharField(source="note")
    type = serializers.SerializerMethodField(help_text="opened, closed or activity")
    status = serializers.CharField(source="status.code")
    kind = serializers.CharField(help_text="created, status, assigned, note, merged or moved")
    media_url = serializers.CharField(source="photo_url", help_text="photo of this update")

    def get_type(self, event: StatusEvent) -> str:
        if event.status.open311_status == "closed":
            return "closed"
        return "opened" if self.context.get("first") == event.pk else "activity"


class StatusDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class AnswerSerializer(serializers.Serializer):
    code = serializers.CharField()
    question = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())


class ExtendedAttributesSerializer(serializers.Serializer):
    """The ``extensions=true`` detail of a request (computed, documented for the schema)."""

    areas = AreaSerializer(many=True, help_text="areas matched when it was routed")
    routing_rule = serializers.CharField(help_text="why it went to agency_responsible")
    team = serializers.CharField(allow_null=True)
    detailed_status = StatusDetailSerializer()
    notes = NoteSerializer(many=True)
    answers = AnswerSerializer(many=True)
    parent_service_request_id = serializers.CharField(
        allow_null=True, help_text="merged into this request (Chicago style)"
    )
    duplicates = serializers.ListField(
        child=serializers.CharField(), help_text="requests merged into this one"
    )
    followers = serializers.IntegerField(help_text="how many follow it (never who)")


class RequestExtendedSerializer(RequestSerializer):
    extended_attributes = serializers.SerializerMethodField()

    @extend_schema_field(ExtendedAttributesSerializer)
    def get_extended_attributes(self, request: ServiceRequest) -> dict[str, Any]:
        events = _public_events(request)
        questions = {a.code: a.description for a in request.category.attributes.all()}
        answers = []
        for code, value in request.attributes.items():
            values = value if isinstance(value, list) else [value]
            answers.append(
                {
                    "code": code,
                    "question": questions.get(code, ""),
                    "values": [str(v) for v in values],
                }
            )
        routing = request.routing or {}
        return {
            "areas": [
                {"layer": b.get("layer", ""), "code": b.get("code", ""), "name": b.get("name", "")}
                for b in routing.get("boundaries", [])
            ],
            "routing_rule": routing.get("rule", ""),
            "team": request.team.name if request.team else None,
            "detailed_status": {"code": request.status.code, "name": request.status.name},
            "notes": NoteSerializer(
                events, many=True, context={"first": events[0].pk if events else None}
            ).data,
            "answers": answers,
            # Annotated by selectors.request_list(extended=True), in its one query.
            "parent_service_request_id": getattr(request, "parent_public_id"),  # noqa: B009
            "duplicates": getattr(request, "duplicate_public_ids"),  # noqa: B009
            "followers": getattr(request, "follower_count"),  # noqa: B009
        }


def _public_events(request: ServiceRequest) -> list[StatusEvent]:
    events = getattr(request, "public_events", None)
    if events is None:  # not from a selector: one query
        events = list(request.events.filter(public=True).select_related("status"))
    return events


class RequestCreatedSerializer(ShallowFieldsMixin, serializers.Serializer):
    """What POST /requests answers: the id, or for batch services the token instead."""

    service_request_id = serializers.CharField(source="public_id", required=False)
    token = serializers.CharField(required=False)
    service_notice = serializers.CharField()
    account_id = serializers.SerializerMethodField(
        help_text="geo311 keeps no accounts: always null"
    )

    @extend_schema_field({"type": "string", "nullable": True})
    def get_account_id(self, request: ServiceRequest) -> None:
        return None

    def to_representation(self, instance: ServiceRequest) -> dict[str, Any]:
        data = super().to_representation(instance)
        if instance.category.type == ServiceType.BATCH:
            del data["service_request_id"]
        else:
            del data["token"]
        return data


class TokenSerializer(serializers.Serializer):
    service_request_id = serializers.CharField(source="public_id")
    token = serializers.CharField()


class RequestUpdateSerializer(serializers.Serializer):
    update_id = serializers.CharField(source="pk")
    service_request_id = serializers.CharField(source="request.public_id")
    status = serializers.CharField(source="status.open311_status", help_text="open or closed")
    detailed_status = serializers.CharField(source="status.code")
    updated_datetime = W3CDateTimeField(source="created_at")
    description = serializers.CharField(source="note")
    media_url = serializers.CharField(source="photo_url", help_text="the update's photo")


class EndpointSerializer(serializers.Serializer):
    specification = serializers.CharField()
    url = serializers.CharField()
    changeset = serializers.CharField()
    type = serializers.CharField(help_text="production or test")
    formats = serializers.ListField(child=serializers.CharField())


class DiscoverySerializer(serializers.Serializer):
    changeset = serializers.CharField()
    contact = serializers.CharField()
    key_service = serializers.CharField()
    endpoints = EndpointSerializer(many=True)


class CoverageAreaSerializer(serializers.Serializer):
    layer = serializers.CharField(source="version.layer.slug")
    layer_name = serializers.CharField(source="version.layer.name")
    code = serializers.CharField()
    name = serializers.CharField()


class ServiceCoverageSerializer(serializers.Serializer):
    service_code = serializers.CharField(source="category.service_code")
    service_name = serializers.CharField(source="category.name")
    served = serializers.BooleanField()
    agency_responsible = serializers.CharField(source="department.name", allow_null=True)
    team = serializers.CharField(source="team.name", allow_null=True)
    reason = serializers.CharField(help_text="why it is not served here")


class CoverageSerializer(serializers.Serializer):
    """A ``selectors.Coverage``; the point asked about comes in ``context["point"]``."""

    jurisdiction_id = serializers.SerializerMethodField()
    lat = serializers.SerializerMethodField()
    long = serializers.SerializerMethodField()
    served = serializers.BooleanField(help_text="inside the jurisdiction")
    areas = CoverageAreaSerializer(many=True, source="boundaries")
    services = ServiceCoverageSerializer(many=True)

    def get_jurisdiction_id(self, coverage: Any) -> str:
        return str(settings.GEO311_JURISDICTION_ID)

    def get_lat(self, coverage: Any) -> float:
        return self.context["point"].y

    def get_long(self, coverage: Any) -> float:
        return self.context["point"].x


class NearbyRequestSerializer(serializers.Serializer):
    """A request near another that it may repeat: public fields, the score (0-1) and its reasons;
    no reporter details, no description."""

    service_request_id = serializers.CharField(source="request.public_id")
    service_code = serializers.CharField(source="request.category.service_code")
    service_name = serializers.CharField(source="request.category.name")
    status = serializers.CharField(source="open311_status", help_text="open or closed")
    requested_datetime = W3CDateTimeField(source="request.requested_at")
    address = serializers.SerializerMethodField()
    lat = serializers.SerializerMethodField()
    long = serializers.SerializerMethodField()
    distance_m = serializers.SerializerMethodField()
    score = serializers.SerializerMethodField()
    likely = serializers.SerializerMethodField(help_text="at or above the likely threshold")
    reasons = serializers.SerializerMethodField()

    # Sensitive categories: the cell centre, no address, the distance rounded to the grid.
    def get_address(self, candidate: Any) -> str:
        return public_address_of(candidate.request)

    def get_lat(self, candidate: Any) -> float:
        return public_location_of(candidate.request).y

    def get_long(self, candidate: Any) -> float:
        return public_location_of(candidate.request).x

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_reasons(self, candidate: Any) -> list[str]:
        return public_reasons(candidate.reasons, candidate.request.category.sensitive)

    def get_distance_m(self, candidate: Any) -> float:
        return public_distance_m(
            candidate.features.distance_m, candidate.request.category.sensitive
        )

    def get_score(self, candidate: Any) -> float:
        return round(candidate.score, 3)

    def get_likely(self, candidate: Any) -> bool:
        return bool(candidate.score >= self.context["likely_score"])
