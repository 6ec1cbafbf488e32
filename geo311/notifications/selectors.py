"""Reads for notifications: who is told of an event, what an event stream replays."""

import datetime as dt

from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.gis.db.models import PointField
from django.contrib.gis.measure import D
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Cast

from geo311.models import Follower, ServiceRequest, StatusEvent
from geo311.roles import MANAGER

from .models import AreaSubscription, Frequency, Notify, ReporterPreference, WebhookSubscription


def event_for_fan_out(*, event_id: int) -> StatusEvent | None:
    """The event with all a message about it reads, in one query (``get``: ``first`` would
    order by the models' orderings, through the request, for one row)."""
    try:
        return StatusEvent.objects.select_related(
            "status",
            "previous_status",
            "request__category",
            "request__status",
            "request__department",
            "request__team",
            "request__duplicate_of",
        ).get(pk=event_id)
    except StatusEvent.DoesNotExist:
        return None


def reporter_notify(*, request: ServiceRequest) -> str:
    """How the reporter wants to hear (``Notify``): their stated preference, else email when
    they gave an email address."""
    stated = ReporterPreference.objects.filter(request=request).values_list("notify", flat=True)
    for notify in stated[:1]:
        return notify
    return Notify.EMAIL if request.reporter_email else Notify.NONE


def followers_to_tell(*, request: ServiceRequest, closing: bool) -> QuerySet[Follower]:
    """Active followers of ``request`` who want this update: every public update, or only
    the one that closes it."""
    followers = Follower.objects.filter(request=request, unsubscribed_at__isnull=True)
    return followers if closing else followers.exclude(updates="closed")


def followers_moved(*, duplicate: ServiceRequest, parent: ServiceRequest) -> QuerySet[Follower]:
    """Followers of ``duplicate`` that a merge moved to ``parent``: the audit trail
    (``geo311.models.audited``) keeps each follower row as it was before the move."""
    history = apps.get_model("geo311", "FollowerHistory")
    was_following = history.objects.filter(request_id=duplicate.pk, pgh_label="update").values(
        "pgh_obj_id"
    )
    return Follower.objects.filter(
        pk__in=was_following, request=parent, unsubscribed_at__isnull=True
    )


def webhooks_for(*, kind: str, request: ServiceRequest) -> QuerySet[WebhookSubscription]:
    """Active webhooks that want events of ``kind`` about ``request``'s department."""
    return WebhookSubscription.objects.filter(
        Q(event_types=[]) | Q(event_types__contains=[kind]),
        Q(department__isnull=True) | Q(department_id=request.department_id),
        active=True,
    )


def area_subscriptions_for(
    *, request: ServiceRequest, frequency: str = Frequency.IMMEDIATE
) -> QuerySet[AreaSubscription]:
    """Active subscriptions whose area holds ``request``: one of the boundaries it was routed
    by (layer and code, as stored on the request) or a circle around its point (metres, on the
    geography), for its category or for all."""
    areas = Q(pk__in=[])
    for boundary in (request.routing or {}).get("boundaries", []):
        areas |= Q(layer__slug=boundary["layer"], boundary_code=boundary["code"])
    areas |= Q(center__dwithin=(request.location, F("radius_m")))
    return (
        AreaSubscription.objects.filter(
            areas,
            Q(categories__isnull=True) | Q(categories=request.category_id),
            frequency=frequency,
            confirmed_at__isnull=False,
            unsubscribed_at__isnull=True,
        )
        .distinct()
        .order_by("pk")
    )


def digest_requests(
    *, subscription: AreaSubscription, since: dt.datetime, until: dt.datetime
) -> QuerySet[ServiceRequest]:
    """Requests filed in [since, until) in the subscription's area and categories."""
    requests = ServiceRequest.objects.select_related("category", "status").filter(
        requested_at__gte=since, requested_at__lt=until
    )
    categories = list(subscription.categories.values_list("pk", flat=True))
    if categories:
        requests = requests.filter(category_id__in=categories)
    if subscription.layer is not None:
        requests = requests.filter(
            routing__boundaries__contains=[
                {"layer": subscription.layer.slug, "code": subscription.boundary_code}
            ]
        )
    else:
        assert subscription.center is not None
        assert subscription.radius_m is not None
        # The same cast as the request table's GiST index (place and time), so it serves this.
        requests = requests.annotate(
            geography=Cast("location", PointField(geography=True, srid=4326))
        ).filter(geography__dwithin=(subscription.center, D(m=subscription.radius_m)))
    return requests.order_by("requested_at", "pk")


def managers_to_tell() -> QuerySet[User]:
    """Managers with an email address: they get the overdue digest."""
    return User.objects.filter(groups__name=MANAGER, is_active=True).exclude(email="").distinct()


def overdue_requests(*, at: dt.datetime) -> QuerySet[ServiceRequest]:
    """Open requests whose expected time has passed, oldest promise first."""
    return (
        ServiceRequest.objects.select_related("category", "status", "department")
        .filter(status__open311_status="open", expected_at__lt=at, duplicate_of__isnull=True)
        .order_by("expected_at", "pk")
    )


def request_events_after(
    *, request_id: int, after_id: int, private: bool
) -> list[dict[str, object]]:
    """Events of a request after event ``after_id``, as the event stream sends them (public
    ones only unless ``private``)."""
    events = StatusEvent.objects.select_related("status").filter(
        request_id=request_id, pk__gt=after_id
    )
    if not private:
        events = events.filter(public=True)
    return [event_as_stream(event=e, private=private) for e in events.order_by("pk")]


def event_as_stream(*, event: StatusEvent, private: bool) -> dict[str, object]:
    """One event as the live stream sends it."""
    body: dict[str, object] = {
        "id": event.pk,
        "kind": event.kind,
        "status": event.status.open311_status,
        "detailed_status": event.status.code,
        "status_name": event.status.name,
        "note": event.note if event.public else "",
        "photo_url": event.photo_url if event.public else "",
        "datetime": event.created_at.isoformat(),
    }
    if private:
        body.update(public=event.public, internal_note=event.internal_note, actor=event.actor)
    return body
