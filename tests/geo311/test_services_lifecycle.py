"""The request lifecycle services: transitions as the city configures them, assignment, notes,
merge, moving a pin, following, service levels."""

import datetime as dt
import itertools

import pytest
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.utils import timezone

from boundaries.models import Layer
from geo311.config import read_config
from geo311.duplicates import duplicate_candidates
from geo311.models import (
    Department,
    EventKind,
    Follower,
    FollowerReason,
    RoutingRule,
    ServiceCategory,
    ServiceRequest,
    Status,
    StatusEvent,
    StatusTransition,
    Team,
)
from geo311.roles import CREW, DEPARTMENT_STAFF
from geo311.services import (
    Actor,
    Reporter,
    request_assign,
    request_create,
    request_follow,
    request_merge,
    request_move,
    request_note_add,
    request_transition,
)
from tests.conftest import DEMO
from tests.factories import staff_user
from tests.geo311.conftest import make_request

pytestmark = pytest.mark.django_db

# Ward 42 in the 2003-2015 map (by Millennium Park): its own sanitation crew and pothole level.
WARD_42 = Point(-87.6230, 41.8850, srid=4326)
# Ward 1 (Wicker Park).
WICKER_PARK = Point(-87.6776, 41.9088, srid=4326)

DEMO_TRANSITIONS = read_config(DEMO / "city.yaml")["transitions"]
STATUSES = [s["code"] for s in read_config(DEMO / "city.yaml")["statuses"]]


def allowed_in_demo(source: str, target: str) -> tuple[bool, bool]:
    """(allowed, note required) as the demo city.yaml says."""
    for item in DEMO_TRANSITIONS.get(source, []):
        spec = item if isinstance(item, dict) else {"to": item}
        if spec["to"] == target:
            return True, bool(spec.get("note_required"))
    return False, False


def status(code: str) -> Status:
    return Status.objects.get(code=code)


def filed(code: str = "SAN_CODE", point: Point = WARD_42, **extra: object) -> ServiceRequest:
    answers = {
        "SAN_CODE": {"NATURE": ["overflowing-carts"]},
        "POTHOLE": {"WHERE": ["street"]},
    }.get(code, {})
    return request_create(
        category=ServiceCategory.objects.get(service_code=code),
        location=point,
        answers=answers,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def clerk(chicago_city):  # type: ignore[no-untyped-def]
    return staff_user("clerk", DEPARTMENT_STAFF, "streets-sanitation")


@pytest.mark.parametrize(("source", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_every_transition_follows_the_city_config(chicago_city, clerk, source, target):
    request = make_request("SAN_CODE", status=source)
    allowed, note_required = allowed_in_demo(source, target)
    actor = Actor(user=clerk)
    if not allowed:
        with pytest.raises(ValidationError) as refused:
            request_transition(request=request, status=status(target), actor=actor)
        assert "status" in refused.value.message_dict
        assert ServiceRequest.objects.get(pk=request.pk).status.code == source
        return
    if note_required:
        with pytest.raises(ValidationError) as refused:
            request_transition(request=request, status=status(target), actor=actor)
        assert "needs a public note" in refused.value.message_dict["public_note"][0]
    event = request_transition(
        request=request, status=status(target), actor=actor, public_note="Done as asked"
    )
    request.refresh_from_db()
    assert request.status.code == target
    assert (event.previous_status.code, event.status.code) == (source, target)


def test_the_demo_city_refuses_completed_straight_from_submitted(chicago_city, clerk):
    request = filed()
    with pytest.raises(ValidationError) as refused:
        request_transition(request=request, status=status("completed"), actor=Actor(user=clerk))
    assert refused.value.message_dict["status"] == [
        "'submitted' cannot change to 'completed' (allowed: acknowledged, assigned, "
        "in-progress, rejected, not-our-responsibility)"
    ]


def test_a_city_that_lists_submitted_to_completed_allows_it(chicago_city, clerk):
    StatusTransition.objects.create(from_status=status("submitted"), to_status=status("completed"))
    request = filed()
    request_transition(request=request, status=status("completed"), actor=Actor(user=clerk))
    assert ServiceRequest.objects.get(pk=request.pk).status.code == "completed"


def test_the_duplicate_status_comes_only_with_a_merge(chicago_city, clerk):
    request = filed()
    with pytest.raises(ValidationError) as refused:
        request_transition(request=request, status=status("duplicate"), actor=Actor(user=clerk))
    assert "merging" in refused.value.message_dict["status"][0]


def test_a_transition_records_who_when_notes_and_photo_and_sets_closed_at(chicago_city, clerk):
    request = filed()
    actor = Actor(user=clerk)
    request_transition(request=request, status=status("assigned"), actor=actor)
    before = timezone.now()
    event = request_transition(
        request=request,
        status=status("completed"),
        actor=actor,
        public_note="Carts emptied",
        internal_note="crew 7, overtime",
        photo_url="https://photos.example.org/after.jpg",
    )
    event.refresh_from_db()
    assert (event.kind, event.actor, event.actor_user) == (EventKind.STATUS, "clerk", clerk)
    assert event.created_at >= before
    assert (event.note, event.internal_note) == ("Carts emptied", "crew 7, overtime")
    assert event.photo_url == "https://photos.example.org/after.jpg"
    assert event.public is True
    request.refresh_from_db()
    assert request.closed_at == event.created_at
    assert request.updated_at == event.created_at
    # Reopening clears the closing time.
    request_transition(
        request=request, status=status("in-progress"), actor=actor, public_note="Came back"
    )
    request.refresh_from_db()
    assert request.closed_at is None


def test_a_photo_must_be_a_web_address(chicago_city, clerk):
    request = filed()
    with pytest.raises(ValidationError) as refused:
        request_note_add(request=request, actor=Actor(user=clerk), photo_url="file:///etc/passwd")
    assert "photo_url" in refused.value.message_dict


def test_notes_are_public_internal_or_both_and_need_one(chicago_city, clerk):
    request = filed()
    actor = Actor(user=clerk)
    with pytest.raises(ValidationError):
        request_note_add(request=request, actor=actor)
    internal = request_note_add(request=request, actor=actor, internal_note="caller is a landlord")
    public = request_note_add(request=request, actor=actor, public_note="We have seen it")
    assert (internal.public, public.public) == (False, True)
    assert internal.status == public.status == request.status


def test_assignment_to_a_crew_member_takes_their_team(chicago_city, clerk):
    request = filed()  # ward 42, routed to the loop crew
    assert request.team is not None
    assert request.team.slug == "loop-crew"
    crew = staff_user("crew7", CREW, "streets-sanitation", "ward-crews")
    event = request_assign(request=request, actor=Actor(user=clerk), assignee=crew)
    request.refresh_from_db()
    assert (request.team.slug, request.assignee) == ("ward-crews", crew)
    assert event.kind == EventKind.ASSIGNED
    assert event.public is False  # no public note: crew names are not published
    assert event.data["previous_team"] == "loop-crew"
    assert event.data["assignee_name"] == "crew7"


def test_assignment_stays_inside_the_department(chicago_city, clerk):
    request = filed()
    other_team = Team.objects.get(slug="street-ops")  # Transportation's
    with pytest.raises(ValidationError) as refused:
        request_assign(request=request, actor=Actor(user=clerk), team=other_team)
    assert "is not a team of" in refused.value.message_dict["team"][0]
    outsider = staff_user("roads", CREW, "transportation", "street-ops")
    with pytest.raises(ValidationError) as refused:
        request_assign(request=request, actor=Actor(user=clerk), assignee=outsider)
    assert "does not work for Streets & Sanitation" in refused.value.message_dict["assignee"][0]


def test_service_level_sets_expected_at_per_category_and_zone(chicago_city):
    at = timezone.now().replace(microsecond=0)
    loop = filed("POTHOLE", requested_at=at)  # ward 42: its own 24 h level
    elsewhere = filed("POTHOLE", point=WICKER_PARK, requested_at=at)
    none = filed("STRAY_ANIMAL", requested_at=at)
    assert loop.expected_at == at + dt.timedelta(hours=24)
    assert elsewhere.expected_at == at + dt.timedelta(hours=72)
    assert none.expected_at is None


def test_moving_the_pin_reroutes_and_records_the_change(chicago_city, clerk):
    request = filed("POTHOLE")
    assert request.expected_at == request.requested_at + dt.timedelta(hours=24)
    crew = staff_user("roadcrew", CREW, "transportation", "street-ops")
    request_assign(request=request, actor=Actor(user=clerk), assignee=crew)
    event = request_move(
        request=request,
        actor=Actor(user=clerk),
        location=WICKER_PARK,
        address="1500 N Milwaukee Ave",
        internal_note="caller gave the wrong corner",
    )
    request.refresh_from_db()
    assert (request.location.x, request.location.y) == (WICKER_PARK.x, WICKER_PARK.y)
    assert request.address == "1500 N Milwaukee Ave"
    assert request.address_key == "1500 N MILWAUKEE AVE"
    assert [b["code"] for b in request.routing["boundaries"] if b["layer"] == "wards"] == ["1"]
    assert request.expected_at == request.requested_at + dt.timedelta(hours=72)
    assert request.assignee == crew  # same department: the crew keeps it
    assert event.kind == EventKind.MOVED
    assert event.data["from"]["lat"] == WARD_42.y
    assert event.data["to"]["address"] == "1500 N Milwaukee Ave"


def test_moving_into_another_departments_area_hands_it_over_unassigned(chicago_city, clerk):
    RoutingRule.objects.create(
        category=ServiceCategory.objects.get(service_code="SIDEWALK"),
        layer=Layer.objects.get(slug="wards"),
        boundary_code="1",
        department=Department.objects.get(slug="parks"),
    )
    request = filed("SIDEWALK")
    assert request.department.slug == "transportation"
    crew = staff_user("walker", CREW, "transportation", "street-ops")
    manager = staff_user("boss", "manager")
    request_assign(request=request, actor=Actor(user=manager), assignee=crew)
    event = request_move(request=request, actor=Actor(user=manager), location=WICKER_PARK)
    request.refresh_from_db()
    assert request.department.slug == "parks"
    assert (request.team, request.assignee) == (None, None)
    assert (event.data["from"]["department"], event.data["to"]["department"]) == (
        "transportation",
        "parks",
    )


def test_moving_outside_the_city_is_refused(chicago_city, clerk):
    request = filed()
    with pytest.raises(ValidationError) as refused:
        request_move(request=request, actor=Actor(user=clerk), location=Point(-80.0, 40.0))
    assert "location" in refused.value.message_dict


# --- follow -----------------------------------------------------------------------------------


def test_following_twice_with_one_contact_is_one_follower(chicago_city):
    request = filed()
    first = request_follow(request=request, email=" Ada@Example.org ")
    again = request_follow(request=request, email="ada@example.org", updates="closed")
    assert first.pk == again.pk
    assert again.email == "ada@example.org"
    assert again.updates == "closed"
    by_phone = request_follow(request=request, phone="(312) 555-0199")
    assert by_phone.phone == "3125550199"
    assert Follower.objects.filter(request=request).count() == 2


@pytest.mark.parametrize(
    ("contact", "field"),
    [({}, "email"), ({"email": "not-an-address"}, "email"), ({"phone": "12"}, "phone")],
)
def test_a_follower_needs_a_real_contact(chicago_city, contact, field):
    with pytest.raises(ValidationError) as refused:
        request_follow(request=filed(), **contact)
    assert field in refused.value.message_dict


def test_following_a_merged_duplicate_follows_its_original(chicago_city, clerk):
    original, duplicate = filed(), filed()
    request_merge(duplicate=duplicate, parent=original, actor=Actor(user=clerk))
    duplicate.refresh_from_db()
    follower = request_follow(request=duplicate, email="late@example.org")
    assert follower.request_id == original.pk


# --- merge ------------------------------------------------------------------------------------


def test_merge_moves_followers_and_reporter_links_both_ways_and_closes_the_duplicate(
    chicago_city, clerk
):
    original = filed(reporter=Reporter(email="first@example.org"))
    duplicate = filed(reporter=Reporter(email="second@example.org", phone="312-555-0100"))
    request_follow(request=duplicate, email="neighbour@example.org")
    request_follow(request=duplicate, email="FIRST@example.org")  # the original's own reporter
    request_follow(request=original, phone="312 555 0111")
    request_follow(request=duplicate, phone="+1 312 555 0111", email="both@example.org")

    event = request_merge(
        duplicate=duplicate, parent=original, actor=Actor(user=clerk), internal_note="same cart"
    )

    duplicate.refresh_from_db()
    original.refresh_from_db()
    assert duplicate.duplicate_of == original
    assert list(original.duplicates.all()) == [duplicate]
    assert duplicate.status.is_duplicate
    assert duplicate.status.open311_status == "closed"
    assert duplicate.closed_at == event.created_at
    assert not Follower.objects.filter(request=duplicate).exists()
    followers = {(f.email, f.phone, f.reason) for f in Follower.objects.filter(request=original)}
    assert followers == {
        ("neighbour@example.org", "", FollowerReason.FOLLOWED),
        ("first@example.org", "", FollowerReason.FOLLOWED),
        ("", "3125550111", FollowerReason.FOLLOWED),
        ("both@example.org", "+13125550111", FollowerReason.FOLLOWED),
        ("second@example.org", "3125550100", FollowerReason.MERGED_REPORTER),
    }
    assert (event.kind, event.data) == (EventKind.MERGED, {"parent": original.public_id})
    assert event.internal_note == "same cart"
    assert original.public_id in event.note
    parent_event = StatusEvent.objects.filter(request=original, kind=EventKind.MERGED).get()
    assert parent_event.data["duplicate"] == duplicate.public_id
    assert parent_event.data["reporter_added"] is True


def test_merge_keeps_every_link_pointing_at_the_original(chicago_city, clerk):
    actor = Actor(user=clerk)
    original, middle = filed(), filed()
    earlier_duplicate, suggested = filed(), filed()
    request_merge(duplicate=earlier_duplicate, parent=middle, actor=actor)
    ServiceRequest.objects.filter(pk=suggested.pk).update(possible_duplicate_of=middle)
    ServiceRequest.objects.filter(pk=original.pk).update(possible_duplicate_of=middle)

    request_merge(duplicate=middle, parent=original, actor=actor)

    earlier_duplicate.refresh_from_db()
    suggested.refresh_from_db()
    original.refresh_from_db()
    assert earlier_duplicate.duplicate_of == original
    assert suggested.possible_duplicate_of == original
    assert original.possible_duplicate_of is None  # it is the original, not a repeat
    # Merging into a duplicate merges into its original.
    late = filed()
    request_merge(duplicate=late, parent=middle, actor=actor)
    late.refresh_from_db()
    assert late.duplicate_of == original


def test_a_merged_duplicate_is_no_longer_a_duplicate_candidate(chicago_city, clerk):
    original, duplicate = filed(), filed()
    san = ServiceCategory.objects.get(service_code="SAN_CODE")
    before = {c.request.pk for c in duplicate_candidates(category=san, point=WARD_42)}
    assert {original.pk, duplicate.pk} <= before
    request_merge(duplicate=duplicate, parent=original, actor=Actor(user=clerk))
    after = {c.request.pk for c in duplicate_candidates(category=san, point=WARD_42)}
    assert original.pk in after
    assert duplicate.pk not in after


@pytest.mark.parametrize("case", ["itself", "closed", "already merged", "parent merged into it"])
def test_merges_that_make_no_sense_are_refused(chicago_city, clerk, case):
    actor = Actor(user=clerk)
    a, b = filed(), filed()
    if case == "itself":
        duplicate, parent = a, a
    elif case == "closed":
        request_transition(request=a, status=status("assigned"), actor=actor)
        request_transition(request=a, status=status("completed"), actor=actor)
        duplicate, parent = a, b
    elif case == "already merged":
        request_merge(duplicate=a, parent=b, actor=actor)
        duplicate, parent = a, filed()
    else:
        request_merge(duplicate=b, parent=a, actor=actor)
        duplicate, parent = a, b
    with pytest.raises(ValidationError) as refused:
        request_merge(duplicate=duplicate, parent=parent, actor=actor)
    assert "parent" in refused.value.message_dict


def test_merge_needs_a_duplicate_status(chicago_city, clerk):
    a, b = filed(), filed()
    Status.objects.update(is_duplicate=False)
    with pytest.raises(ValidationError) as refused:
        request_merge(duplicate=a, parent=b, actor=Actor(user=clerk))
    assert "no duplicate status" in refused.value.message_dict["parent"][0]


def test_each_change_adds_one_event_of_its_kind(chicago_city, clerk):
    """What notifications will hang on: one event per change, of the change's kind."""
    actor = Actor(user=clerk)
    request, other = filed(), filed()
    crew = staff_user("crew9", CREW, "streets-sanitation", "ward-crews")
    request_assign(request=request, actor=actor, assignee=crew)
    request_transition(request=request, status=status("assigned"), actor=actor)
    request_note_add(request=request, actor=actor, internal_note="gate code 1234")
    request_move(request=request, actor=actor, location=WICKER_PARK)
    request_merge(duplicate=other, parent=request, actor=actor)
    kinds = list(
        StatusEvent.objects.filter(request=request).order_by("pk").values_list("kind", flat=True)
    )
    assert kinds == ["created", "assigned", "status", "note", "moved", "merged"]
    assert list(
        StatusEvent.objects.filter(request=other).order_by("pk").values_list("kind", flat=True)
    ) == ["created", "merged"]
