import pytest
from django.contrib.gis.geos import Point

from boundaries.models import Layer
from geo311.cache import ConfigurationChanged, city_config
from geo311.models import Department, RoutingRule, ServiceCategory
from geo311.routing import RoutingError, route
from tests.conftest import LOOP

pytestmark = pytest.mark.django_db

LOOP_POINT = Point(LOOP[1], LOOP[0], srid=4326)
# Jefferson Park (community area 11, ward 45 in the 2003-2015 map), far from the Loop.
NORTHWEST = Point(-87.7614, 41.9703, srid=4326)
LAKE = Point(-87.55, 41.90, srid=4326)  # Lake Michigan, east of the shore


def category(code: str) -> ServiceCategory:
    return ServiceCategory.objects.get(service_code=code)


def test_category_rule_with_boundary_code_beats_layer_rule(chicago_city):
    north = route(category=category("GRAFFITI"), point=LOOP_POINT)  # community area 32
    south = route(category=category("GRAFFITI"), point=Point(-87.6, 41.75, srid=4326))
    assert north.team is not None
    assert north.team.slug == "graffiti-north"
    assert south.team is not None
    assert south.team.slug == "graffiti-south"
    assert north.rule is not None
    assert north.rule.boundary_code == "32"
    assert south.rule is not None
    assert south.rule.boundary_code == ""


def test_category_rule_beats_group_rule(chicago_city):
    rodent = route(category=category("RODENT"), point=NORTHWEST)
    missed = route(category=category("MISSED_PICKUP"), point=NORTHWEST)
    assert rodent.team is not None
    assert rodent.team.slug == "rodent-control"
    assert missed.team is not None
    assert missed.team.slug == "ward-crews"
    assert missed.rule is not None
    assert missed.rule.group == "Sanitation"


def test_maintenance_zone_routes_lights(chicago_city):
    loop = route(category=category("LIGHT_OUT"), point=LOOP_POINT)  # beat 113
    far = route(category=category("LIGHT_OUT"), point=NORTHWEST)
    assert loop.team is not None
    assert loop.team.slug == "electrical-north"
    assert far.team is not None
    assert far.team.slug == "electrical-south"
    assert loop.department.slug == "transportation"


def test_no_rule_means_the_category_default_department(chicago_city):
    routing = route(category=category("POTHOLE"), point=NORTHWEST)
    assert (routing.department.slug, routing.rule, routing.team) == ("transportation", None, None)
    assert routing.as_record()["rule"] == "category default department"


def test_priority_breaks_ties_between_equally_specific_rules(chicago_city):
    parks = Department.objects.get(slug="parks")
    wards = Layer.objects.get(slug="wards")
    RoutingRule.objects.create(
        category=category("POTHOLE"), layer=wards, department=parks, priority=5
    )
    RoutingRule.objects.create(
        category=category("POTHOLE"),
        layer=wards,
        department=Department.objects.get(slug="buildings"),
        priority=1,
    )
    assert route(category=category("POTHOLE"), point=NORTHWEST).department == parks


def test_outside_the_city_is_refused(chicago_city):
    with pytest.raises(RoutingError, match="outside the area this service covers"):
        route(category=category("POTHOLE"), point=LAKE)


def test_required_layer_missing_is_refused(chicago_city):
    # Every point of the city is in some beat, so take the beats layer out of service: a
    # category that needs it can then not be routed anywhere.
    light = category("NOISE")
    light.required_layers.add(Layer.objects.get(slug="police-beats"))
    far_south = Point(-87.6, 41.66, srid=4326)
    assert route(category=light, point=far_south).department.slug == "police"
    Layer.objects.get(slug="police-beats").versions.update(status="retired")
    with pytest.raises(RoutingError, match="outside every police-beats area"):
        route(category=light, point=far_south)


def test_routing_record_names_rule_and_every_matched_area(chicago_city):
    record = route(category=category("SAN_CODE"), point=LOOP_POINT).as_record()
    assert record["department"] == "streets-sanitation"
    assert record["team"] == "ward-crews"
    assert record["rule"] == "group Sanitation in wards → Streets & Sanitation"
    assert {(b["layer"], b["code"], b["version"]) for b in record["boundaries"]} == {
        ("city-limits", "CHICAGO", 1),
        ("community-areas", "32", 1),
        ("police-beats", "113", 1),
        ("police-districts", "1", 1),
        ("wards", "2", 1),
    }


def test_routing_is_one_query(chicago_city, django_assert_num_queries):
    cat = category("SAN_CODE")
    config = city_config()
    # The areas at the point, with the jurisdiction layers and the configuration's generation.
    with django_assert_num_queries(1):
        route(category=cat, point=LOOP_POINT, config=config)
    with django_assert_num_queries(1):
        route(category=cat, point=LOOP_POINT)


def test_routing_with_an_old_configuration_says_so(chicago_city):
    config = city_config()
    ServiceCategory.objects.filter(service_code="SAN_CODE").update(name="Sanitation")
    with pytest.raises(ConfigurationChanged):
        route(category=category("SAN_CODE"), point=LOOP_POINT, config=config)
