"""The staff API (``/api/v1/staff/``): the department queue and the lifecycle actions, one small
view per operation with its own input and output serializers.

Signed-in staff only: a session (the staff pages) or a token (apps; ``POST token``). What each
role may see and do is ``geo311.roles``; a request outside the user's reach is a 403, an unknown
one a 404. Writes go through ``geo311.services``, reads through ``geo311.selectors``.
"""

from typing import Any

from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from boundaries.models import Boundary

from . import selectors, services
from .addresses import AddressNotFound, address_resolve
from .cache import city_config
from .models import (
    Channel,
    ServiceCategory,
    ServiceRequest,
    Status,
    StatusEvent,
)
from .notifications.models import Notify
from .notifications.services import reporter_preference_check, reporter_preference_set
from .open311.serializers import W3CDateTimeField
from .services import Actor, Reporter

TAGS = ["staff"]


def _django_errors(
    exc: DjangoValidationError, names: dict[str, str] | None = None
) -> serializers.ValidationError:
    """A service's ValidationError as the API's 400 (field → messages), its field names renamed
    to the API's (``names``)."""
    if hasattr(exc, "error_dict"):
        return serializers.ValidationError(
            {(names or {}).get(k, k): v for k, v in exc.message_dict.items()}
        )
    return serializers.ValidationError({"non_field_errors": exc.messages})


class StaffPermission(BasePermission):
    """Asks Django's permissions (the rules of ``geo311.roles``): the view's ``permission``,
    and ``object_permission`` on the request it acts on."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(view.permission))

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return bool(request.user.has_perm(view.object_permission, obj))


class StaffApi(APIView):
    # Token first: an anonymous caller is then told how to authenticate (401, not 403).
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [StaffPermission]
    renderer_classes = [JSONRenderer]
    permission = "geo311.use_staff_api"
    object_permission = "geo311.view_request_private"

    def staff_request(self, public_id: str) -> ServiceRequest:
        """The request ``public_id`` if the user may act on it (``object_permission``)."""
        try:
            found = ServiceRequest.objects.select_related("status", "department").get(
                public_id=public_id
            )
        except ServiceRequest.DoesNotExist:
            raise NotFound({"service_request_id": f"no request {public_id}"}) from None
        self.check_object_permissions(self.request, found)
        return found

    def actor(self) -> Actor:
        return Actor(user=self.request.user)  # type: ignore[arg-type]


# --- shared output ------------------------------------------------------------------------------


class EventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="created, status, assigned, note, merged or moved")
    status = serializers.CharField(source="status.code", help_text="status after the event")
    previous_status = serializers.CharField(source="previous_status.code", allow_null=True)
    public = serializers.BooleanField(help_text="shown to residents (note, photo)")
    public_note = serializers.CharField(source="note")
    internal_note = serializers.CharField()
    photo_url = serializers.CharField()
    datetime = W3CDateTimeField(source="created_at")
    actor = serializers.CharField(help_text="who: a user name, an api key, or geo311")
    details = serializers.DictField(
        source="data", help_text="assignment, merge partner, old and new place"
    )


class ChangeOutputSerializer(serializers.Serializer):
    """What every action answers: the request's state after it and the event it wrote."""

    service_request_id = serializers.CharField(source="request.public_id")
    status = serializers.CharField(source="request.status.code")
    open311_status = serializers.CharField(source="request.status.open311_status")
    department = serializers.CharField(source="request.department.slug", allow_null=True)
    team = serializers.CharField(source="request.team.slug", allow_null=True)
    assignee = serializers.CharField(source="request.assignee.username", allow_null=True)
    event = EventOutputSerializer()


def _changed(event: StatusEvent) -> Response:
    request = ServiceRequest.objects.select_related("status", "department", "team", "assignee").get(
        pk=event.request_id
    )
    return Response(ChangeOutputSerializer({"request": request, "event": event}).data)


class StaffNotesMixin(serializers.Serializer):
    public_note = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=4000, help_text="residents see it"
    )
    internal_note = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=4000, help_text="staff only"
    )


# --- token --------------------------------------------------------------------------------------


@extend_schema(tags=TAGS, summary="A token for apps: POST username and password")
class StaffTokenApi(ObtainAuthToken):
    """Exchange a staff user name and password for the token apps send as
    ``Authorization: Token <key>``."""

    renderer_classes = [JSONRenderer]


# --- queue --------------------------------------------------------------------------------------


class QueuePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class QueueApi(StaffApi):
    """The requests the user works on, newest first: a department's staff their department's,
    crew their assigned work, call-takers what they filed, managers every department."""

    @extend_schema_serializer(component_name="StaffQueueInput")
    class InputSerializer(serializers.Serializer):
        status = serializers.CharField(required=False, help_text="comma-separated status codes")
        service_code = serializers.CharField(required=False, help_text="comma-separated codes")
        department = serializers.SlugField(required=False, help_text="managers: one department")
        team = serializers.SlugField(required=False)
        assignee = serializers.CharField(required=False, help_text="a user name; 'me' for you")
        boundary = serializers.CharField(
            required=False, help_text="layer:code of an active boundary, e.g. wards:42"
        )
        min_age_days = serializers.FloatField(required=False, min_value=0)
        max_age_days = serializers.FloatField(required=False, min_value=0)
        open = serializers.BooleanField(required=False, default=False, help_text="open only")
        overdue = serializers.BooleanField(
            required=False, allow_null=True, default=None, help_text="open and past expected"
        )
        page = serializers.IntegerField(required=False, min_value=1)
        page_size = serializers.IntegerField(required=False, min_value=1, max_value=500)

        def validate_boundary(self, value: str) -> Boundary:
            layer, _, code = value.partition(":")
            try:
                return selectors.boundary_active_get(layer=layer, code=code)
            except Boundary.DoesNotExist:
                raise serializers.ValidationError(
                    f"no active boundary '{code}' in layer '{layer}' (give layer:code)"
                ) from None

    @extend_schema_serializer(component_name="StaffQueueOutput")
    class OutputSerializer(serializers.Serializer):
        service_request_id = serializers.CharField(source="public_id")
        service_code = serializers.CharField(source="category.service_code")
        service_name = serializers.CharField(source="category.name")
        status = serializers.CharField(source="status.code")
        open311_status = serializers.CharField(source="status.open311_status")
        department = serializers.CharField(source="department.slug", allow_null=True)
        team = serializers.CharField(source="team.slug", allow_null=True)
        assignee = serializers.CharField(source="assignee.username", allow_null=True)
        address = serializers.CharField()
        lat = serializers.FloatField(source="location.y")
        long = serializers.FloatField(source="location.x")
        requested_datetime = W3CDateTimeField(source="requested_at")
        expected_datetime = W3CDateTimeField(source="expected_at", allow_null=True)
        overdue = serializers.SerializerMethodField()
        possible_duplicate_of = serializers.CharField(
            source="possible_duplicate_of.public_id", allow_null=True
        )
        parent_service_request_id = serializers.CharField(
            source="duplicate_of.public_id", allow_null=True
        )

        def get_overdue(self, request: ServiceRequest) -> bool:
            return bool(
                request.status.open311_status == "open"
                and request.expected_at
                and request.expected_at < self.context["now"]
            )

    @extend_schema(tags=TAGS, parameters=[InputSerializer], responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        assignee = data.get("assignee", "")
        queue = selectors.staff_queue(
            user=request.user,
            statuses=_comma(data.get("status")),
            service_codes=_comma(data.get("service_code")),
            department=data.get("department", ""),
            team=data.get("team", ""),
            assignee=request.user.get_username() if assignee == "me" else assignee,
            boundary=data.get("boundary"),
            min_age_days=data.get("min_age_days"),
            max_age_days=data.get("max_age_days"),
            open_only=data["open"],
            overdue=data["overdue"],
        )
        paginator = QueuePagination()
        page = paginator.paginate_queryset(queue, request, view=self)
        rows = self.OutputSerializer(page, many=True, context={"now": timezone.now()}).data
        return paginator.get_paginated_response(rows)


def _comma(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


# --- one request --------------------------------------------------------------------------------


class StaffRequestDetailApi(StaffApi):
    """One request with what staff see: reporter contact, every event with internal notes, the
    routing record, merge links and possible duplicate, and the statuses it may change to."""

    @extend_schema_serializer(component_name="StaffRequestDetailOutput")
    class OutputSerializer(serializers.Serializer):
        service_request_id = serializers.CharField(source="public_id")
        service_code = serializers.CharField(source="category.service_code")
        service_name = serializers.CharField(source="category.name")
        status = serializers.CharField(source="status.code")
        open311_status = serializers.CharField(source="status.open311_status")
        allowed_statuses = serializers.SerializerMethodField()
        department = serializers.CharField(source="department.slug", allow_null=True)
        team = serializers.CharField(source="team.slug", allow_null=True)
        assignee = serializers.CharField(source="assignee.username", allow_null=True)
        filed_by = serializers.CharField(source="filed_by.username", allow_null=True)
        channel = serializers.CharField()
        description = serializers.CharField()
        attributes = serializers.DictField()
        address = serializers.CharField()
        lat = serializers.FloatField(source="location.y")
        long = serializers.FloatField(source="location.x")
        media_url = serializers.CharField()
        requested_datetime = W3CDateTimeField(source="requested_at")
        updated_datetime = W3CDateTimeField(source="updated_at")
        expected_datetime = W3CDateTimeField(source="expected_at", allow_null=True)
        closed_datetime = W3CDateTimeField(source="closed_at", allow_null=True)
        reporter = serializers.SerializerMethodField()
        routing = serializers.DictField(help_text="the rule and the areas it was routed by")
        possible_duplicate_of = serializers.CharField(
            source="possible_duplicate_of.public_id", allow_null=True
        )
        duplicate_score = serializers.FloatField(allow_null=True)
        duplicate_reasons = serializers.ListField(child=serializers.CharField())
        parent_service_request_id = serializers.CharField(
            source="parent_public_id", allow_null=True
        )
        duplicates = serializers.ListField(
            source="duplicate_public_ids", child=serializers.CharField()
        )
        followers = serializers.IntegerField(source="follower_count")
        events = EventOutputSerializer(many=True, source="all_events")

        @extend_schema_field(serializers.ListField(child=serializers.CharField()))
        def get_allowed_statuses(self, request: ServiceRequest) -> list[str]:
            return services.transitions_allowed(status=request.status)

        @extend_schema_field(serializers.DictField(child=serializers.CharField()))
        def get_reporter(self, request: ServiceRequest) -> dict[str, str]:
            return {
                "first_name": request.reporter_first_name,
                "last_name": request.reporter_last_name,
                "email": request.reporter_email,
                "phone": request.reporter_phone,
                "device_id": request.reporter_device_id,
                "account_id": request.reporter_account_id,
            }

    @extend_schema(tags=TAGS, responses=OutputSerializer)
    def get(self, request: Request, public_id: str) -> Response:
        self.staff_request(public_id)
        found = selectors.request_for_staff_get(public_id=public_id)
        return Response(self.OutputSerializer(found).data)


class HistoryApi(StaffApi):
    """The audit trail of a request: every change of its row, who made it, and each changed
    field before and after (reporter contact included: staff only)."""

    @extend_schema_serializer(component_name="StaffHistoryField")
    class FieldSerializer(serializers.Serializer):
        field = serializers.CharField()
        before = serializers.JSONField(allow_null=True)
        after = serializers.JSONField(allow_null=True)

    @extend_schema_serializer(component_name="StaffHistoryOutput")
    class OutputSerializer(serializers.Serializer):
        datetime = W3CDateTimeField(source="at")
        action = serializers.CharField(help_text="update or delete")
        user_id = serializers.IntegerField(allow_null=True)
        actor = serializers.CharField()
        url = serializers.CharField(help_text="the page or API address it was made through")
        changes = serializers.SerializerMethodField(help_text="each changed field")

        @extend_schema_field(serializers.ListField(child=serializers.DictField()))
        def get_changes(self, change: selectors.Change) -> Any:
            return HistoryApi.FieldSerializer(change.fields, many=True).data

    @extend_schema(tags=TAGS, responses=OutputSerializer(many=True))
    def get(self, request: Request, public_id: str) -> Response:
        found = self.staff_request(public_id)
        return Response(self.OutputSerializer(selectors.history_of(obj=found), many=True).data)


# --- actions ------------------------------------------------------------------------------------


class TransitionApi(StaffApi):
    """Change the status, as the city's transitions allow (a crew sets on-site and completed
    from a phone, with a note and a photo)."""

    object_permission = "geo311.change_request_status"

    @extend_schema_serializer(component_name="StaffTransitionInput")
    class InputSerializer(StaffNotesMixin):
        status = serializers.SlugField(help_text="the new status code")
        photo_url = serializers.URLField(required=False, default="", max_length=1000)

        def validate_status(self, code: str) -> Status:
            try:
                return Status.objects.get(code=code)
            except Status.DoesNotExist:
                raise serializers.ValidationError(f"no status '{code}'") from None

    @extend_schema(tags=TAGS, request=InputSerializer, responses=ChangeOutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        found = self.staff_request(public_id)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            event = services.request_transition(
                request=found, actor=self.actor(), **params.validated_data
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from None
        return _changed(event)


class AssignApi(StaffApi):
    """Give the request to a team of its department and/or one of its crew."""

    object_permission = "geo311.assign_request"

    @extend_schema_serializer(component_name="StaffAssignInput")
    class InputSerializer(StaffNotesMixin):
        team = serializers.SlugField(required=False, help_text="a team of the department")
        assignee = serializers.CharField(required=False, help_text="a crew member's user name")

    @extend_schema(tags=TAGS, request=InputSerializer, responses=ChangeOutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        found = self.staff_request(public_id)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        try:
            team, assignee = services.assignment_targets(
                request=found, team=data.get("team", ""), assignee=data.get("assignee", "")
            )
            event = services.request_assign(
                request=found,
                actor=self.actor(),
                team=team,
                assignee=assignee,
                public_note=data["public_note"],
                internal_note=data["internal_note"],
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from None
        return _changed(event)


class NoteApi(StaffApi):
    """Add a public note (with an optional photo), an internal note, or both."""

    object_permission = "geo311.add_request_note"

    @extend_schema_serializer(component_name="StaffNoteInput")
    class InputSerializer(StaffNotesMixin):
        photo_url = serializers.URLField(required=False, default="", max_length=1000)

    @extend_schema(tags=TAGS, request=InputSerializer, responses=ChangeOutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        found = self.staff_request(public_id)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            event = services.request_note_add(
                request=found, actor=self.actor(), **params.validated_data
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc) from None
        return _changed(event)


class MergeApi(StaffApi):
    """Mark this request a duplicate of ``parent``: its followers and reporter follow the
    parent, both link to each other, and it is closed as a duplicate."""

    object_permission = "geo311.merge_request"

    @extend_schema_serializer(component_name="StaffMergeInput")
    class InputSerializer(StaffNotesMixin):
        parent_service_request_id = serializers.CharField(help_text="the original request")

        def validate_parent_service_request_id(self, public_id: str) -> ServiceRequest:
            try:
                return ServiceRequest.objects.get(public_id=public_id)
            except ServiceRequest.DoesNotExist:
                raise serializers.ValidationError(f"no request {public_id}") from None

    @extend_schema(tags=TAGS, request=InputSerializer, responses=ChangeOutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        found = self.staff_request(public_id)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        try:
            event = services.request_merge(
                duplicate=found,
                parent=data["parent_service_request_id"],
                actor=self.actor(),
                public_note=data["public_note"],
                internal_note=data["internal_note"],
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc, {"parent": "parent_service_request_id"}) from None
        return _changed(event)


class MoveApi(StaffApi):
    """Move the pin: the request is routed again from the new place (department, team, areas,
    expected time), and the old and new place are recorded."""

    object_permission = "geo311.move_request"

    @extend_schema_serializer(component_name="StaffMoveInput")
    class InputSerializer(StaffNotesMixin):
        lat = serializers.FloatField(min_value=-90, max_value=90)
        long = serializers.FloatField(min_value=-180, max_value=180)
        address = serializers.CharField(
            required=False, allow_blank=True, max_length=300, help_text="replaces the address"
        )

    @extend_schema(tags=TAGS, request=InputSerializer, responses=ChangeOutputSerializer)
    def post(self, request: Request, public_id: str) -> Response:
        found = self.staff_request(public_id)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        try:
            event = services.request_move(
                request=found,
                actor=self.actor(),
                location=Point(data["long"], data["lat"], srid=4326),
                address=data.get("address"),
                public_note=data["public_note"],
                internal_note=data["internal_note"],
            )
        except DjangoValidationError as exc:
            raise _django_errors(exc, {"location": "lat"}) from None
        return _changed(event)


class FileForCallerApi(StaffApi):
    """File a request for a caller (the phone channel): by pin or by street address; the
    caller's contact is private like any reporter's. The call-taker sees it in their queue."""

    permission = "geo311.file_for_caller"

    @extend_schema_serializer(component_name="StaffFileForCallerInput")
    class InputSerializer(serializers.Serializer):
        service_code = serializers.CharField(max_length=64)
        lat = serializers.FloatField(required=False, min_value=-90, max_value=90)
        long = serializers.FloatField(required=False, min_value=-180, max_value=180)
        address_string = serializers.CharField(required=False, max_length=300)
        description = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=4000
        )
        attributes = serializers.DictField(
            required=False,
            default=dict,
            help_text="answers by question code: a value, or a list for a multivaluelist",
        )
        first_name = serializers.CharField(required=False, default="", max_length=100)
        last_name = serializers.CharField(required=False, default="", max_length=100)
        email = serializers.EmailField(required=False, default="", max_length=254)
        phone = serializers.CharField(required=False, default="", max_length=50)
        notify = serializers.ChoiceField(
            choices=Notify.choices,
            required=False,
            help_text="how the caller hears of progress (default: email when an email is given)",
        )

        def validate_service_code(self, code: str) -> ServiceCategory:
            category = city_config().categories.get(code)
            if category is None:
                raise serializers.ValidationError(f"no service {code}")
            return category

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            has_point = "lat" in attrs and "long" in attrs
            if has_point == ("address_string" in attrs):
                raise serializers.ValidationError(
                    {"lat": "give lat and long, or an address_string (one of them)"}
                )
            return attrs

    @extend_schema_serializer(component_name="StaffFileForCallerOutput")
    class OutputSerializer(serializers.Serializer):
        service_request_id = serializers.CharField(source="public_id")
        service_notice = serializers.CharField()
        department = serializers.CharField(source="department.slug", allow_null=True)
        expected_datetime = W3CDateTimeField(source="expected_at", allow_null=True)

    @extend_schema(tags=TAGS, request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        place: dict[str, Any] = {}
        if "address_string" in data:
            try:
                found = address_resolve(address_string=data["address_string"])
            except AddressNotFound as exc:
                raise serializers.ValidationError({"address_string": str(exc)}) from None
            place = {
                "location": found.location,
                "address": found.address,
                "address_id": found.address_id,
                "zipcode": found.zipcode,
            }
        else:
            place = {"location": Point(data["long"], data["lat"], srid=4326)}
        answers = {
            code: [str(v) for v in (value if isinstance(value, list) else [value])]
            for code, value in data["attributes"].items()
        }
        try:
            if data.get("notify"):
                reporter_preference_check(
                    notify=data["notify"], email=data["email"], phone=data["phone"]
                )
            created = services.request_create(
                category=data["service_code"],
                description=data["description"],
                answers=answers,
                channel=Channel.PHONE,
                reporter=Reporter(
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    email=data["email"],
                    phone=data["phone"],
                ),
                filed_by=request.user,  # type: ignore[arg-type]
                **place,
            )
            if data.get("notify"):
                reporter_preference_set(request=created, notify=data["notify"])
        except DjangoValidationError as exc:
            raise _django_errors(exc, {"location": "lat", "category": "service_code"}) from None
        return Response(self.OutputSerializer(created).data, status=201)
