import pytest
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError

from geo311.models import ServiceCategory, ServiceRequest, StatusEvent
from geo311.services import Reporter, location_from_lat_long, request_create
from tests.conftest import LOOP

pytestmark = pytest.mark.django_db

LOOP_POINT = Point(LOOP[1], LOOP[0], srid=4326)


def category(code: str) -> ServiceCategory:
    return ServiceCategory.objects.get(service_code=code)


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return exc.value.message_dict


def test_request_create_routes_stores_and_records_the_first_event(chicago_city):
    request = request_create(
        category=category("SAN_CODE"),
        location=LOOP_POINT,
        description="Overflowing carts <b>behind</b> the diner",
        answers={"NATURE": ["overflowing-carts"], "SEEN_AT": ["2026-11-26T14:03:00-06:00"]},
        reporter=Reporter(first_name="Ada", email="ada@example.org"),
    )
    request.refresh_from_db()
    assert request.public_id.isdigit()
    assert int(request.public_id) > 1_000_000
    assert request.department is not None
    assert request.department.slug == "streets-sanitation"
    assert request.status.code == "submitted"
    assert request.attributes == {
        "NATURE": "overflowing-carts",
        "SEEN_AT": "2026-11-26T14:03:00-06:00",
    }
    assert request.description == "Overflowing carts <b>behind</b> the diner"  # text, as given
    assert request.routing["rule"] == "group Sanitation in wards → Streets & Sanitation"
    assert request.reporter_email == "ada@example.org"
    event = StatusEvent.objects.get(request=request)
    assert event.status == request.status


def test_public_ids_are_distinct_and_increasing(chicago_city):
    ids = [
        int(
            request_create(
                category=category("POTHOLE"), location=LOOP_POINT, answers={"WHERE": ["street"]}
            ).public_id
        )
        for _ in range(3)
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize(
    ("code", "answers", "field", "message"),
    [
        (
            "SAN_CODE",
            {},
            "attribute[NATURE]",
            "required: What is the nature of this code violation?",
        ),
        ("SAN_CODE", {"NATURE": ["nope"]}, "attribute[NATURE]", "not a choice: nope"),
        (
            "SAN_CODE",
            {"NATURE": ["other"], "SEEN_AT": ["yesterday"]},
            "attribute[SEEN_AT]",
            "must be a date-time",
        ),
        (
            "POTHOLE",
            {"WHERE": ["street"], "HOW_MANY": ["lots"]},
            "attribute[HOW_MANY]",
            "must be a number, got 'lots'",
        ),
        (
            "POTHOLE",
            {"WHERE": ["street"], "HOW_MANY": ["nan"]},
            "attribute[HOW_MANY]",
            "must be a finite number",
        ),
        ("RODENT", {"SIGNS": ["rats", "unicorns"]}, "attribute[SIGNS]", "not a choice: unicorns"),
        ("POTHOLE", {"WHERE": ["street", "alley"]}, "attribute[WHERE]", "takes one value"),
        (
            "POTHOLE",
            {"WHERE": ["street"], "COLOR": ["red"]},
            "attribute[COLOR]",
            "'COLOR' is not a question of POTHOLE",
        ),
    ],
)
def test_answers_are_checked_against_the_service_definition(
    chicago_city, code, answers, field, message
):
    with pytest.raises(ValidationError) as exc:
        request_create(category=category(code), location=LOOP_POINT, answers=answers)
    assert field in errors_of(exc)
    assert errors_of(exc)[field][0].startswith(message)
    assert not ServiceRequest.objects.exists()


def test_multivaluelist_keeps_every_choice_once(chicago_city):
    request = request_create(
        category=category("RODENT"),
        location=LOOP_POINT,
        answers={"SIGNS": ["rats", "burrows", "rats"]},
    )
    assert request.attributes == {"SIGNS": ["rats", "burrows"]}


def test_description_over_4000_characters_is_refused(chicago_city):
    with pytest.raises(ValidationError) as exc:
        request_create(category=category("SIDEWALK"), location=LOOP_POINT, description="x" * 4001)
    assert errors_of(exc) == {"description": ["at most 4000 characters, got 4001"]}


def test_a_point_in_the_lake_is_refused_and_nothing_is_written(chicago_city):
    with pytest.raises(ValidationError) as exc:
        request_create(category=category("SIDEWALK"), location=Point(-87.55, 41.90, srid=4326))
    assert errors_of(exc) == {"location": ["the location is outside the area this service covers"]}
    assert not ServiceRequest.objects.exists()
    assert not StatusEvent.objects.exists()


def test_inactive_category_is_refused(chicago_city):
    sidewalk = category("SIDEWALK")
    sidewalk.active = False
    with pytest.raises(ValidationError, match="not taken any more"):
        request_create(category=sidewalk, location=LOOP_POINT)


@pytest.mark.parametrize(
    ("lat", "long", "field"),
    [
        ("nan", "-87.6", "lat"),
        ("41.8", "inf", "long"),
        ("91", "-87.6", "lat"),
        ("41.8", "-180.5", "long"),
        ("", "-87.6", "lat"),
        ("41.8", "west", "long"),
    ],
)
def test_location_from_lat_long_names_the_bad_field(lat, long, field):
    with pytest.raises(ValidationError) as exc:
        location_from_lat_long(lat=lat, long=long)
    assert list(errors_of(exc)) == [field]


def test_bad_reporter_email_is_refused_by_name(chicago_city):
    with pytest.raises(ValidationError) as exc:
        request_create(
            category=category("SIDEWALK"),
            location=LOOP_POINT,
            reporter=Reporter(email="not-an-email"),
        )
    assert "reporter_email" in errors_of(exc)
