"""Open311 discovery, services and service definitions, in both formats; jurisdiction_id;
unknown endpoints."""

import pytest
from django.test import Client

from geo311.models import ServiceAttribute, ServiceCategory, Team
from tests.geo311.conftest import errors_of, get, json_of, xml_of

pytestmark = pytest.mark.django_db


def test_discovery_json(client: Client, chicago_city, settings):
    settings.GEO311_OPEN311_CONTACT = "Chicago 311, 311@example.org"
    body = json_of(get(client, "discovery"))
    assert body["contact"] == "Chicago 311, 311@example.org"
    assert body["key_service"]
    assert body["changeset"].endswith("Z")
    (endpoint,) = body["endpoints"]
    assert endpoint == {
        "specification": "http://wiki.open311.org/GeoReport_v2",
        "url": "http://testserver/open311/v2",
        "changeset": body["changeset"],
        "type": "production",
        "formats": ["text/xml", "application/json"],
    }


def test_discovery_xml(client: Client, chicago_city):
    root = xml_of(get(client, "discovery", "xml"))
    assert root.tag == "discovery"
    assert [child.tag for child in root] == ["changeset", "contact", "key_service", "endpoints"]
    (endpoint,) = root.findall("endpoints/endpoint")
    assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint.findtext("url") == "http://testserver/open311/v2"
    assert endpoint.findtext("type") == "production"
    assert [f.text for f in endpoint.iterfind("formats/format")] == [
        "text/xml",
        "application/json",
    ]


def test_services_json_lists_active_categories_in_order(
    client: Client, chicago_city, django_assert_num_queries
):
    ServiceCategory.objects.filter(service_code="HYDRANT").update(active=False)
    with django_assert_num_queries(1):
        body = json_of(get(client, "services"))
    assert isinstance(body, list)
    codes = [s["service_code"] for s in body]
    assert codes[:3] == ["POTHOLE", "CAVE_IN", "SIDEWALK"]
    assert "HYDRANT" not in codes
    assert len(codes) == 16
    pothole = body[0]
    assert pothole == {
        "service_code": "POTHOLE",
        "service_name": "Pothole in street",
        "description": "",
        "metadata": True,
        "type": "realtime",
        "keywords": "pothole, road, asphalt",
        "group": "Streets",
    }
    sidewalk = body[2]
    assert sidewalk["metadata"] is False
    stray = next(s for s in body if s["service_code"] == "STRAY_ANIMAL")
    assert stray["type"] == "batch"


def test_services_xml_element_by_element(client: Client, chicago_city):
    root = xml_of(get(client, "services", "xml"))
    assert root.tag == "services"
    services = list(root)
    assert {s.tag for s in services} == {"service"}
    assert len(services) == 17
    first = services[0]
    assert [(child.tag, child.text) for child in first] == [
        ("service_code", "POTHOLE"),
        ("service_name", "Pothole in street"),
        ("description", None),
        ("metadata", "true"),
        ("type", "realtime"),
        ("keywords", "pothole, road, asphalt"),
        ("group", "Streets"),
    ]
    assert services[2].findtext("metadata") == "false"


def test_service_definition_json(client: Client, chicago_city, django_assert_num_queries):
    with django_assert_num_queries(3):  # the category, its questions, their choices
        body = json_of(get(client, "services/POTHOLE"))
    assert body["service_code"] == "POTHOLE"
    where, how_many = body["attributes"]
    assert where == {
        "variable": True,
        "code": "WHERE",
        "datatype": "singlevaluelist",
        "required": True,
        "datatype_description": "",
        "order": 1,
        "description": "Where is the pothole?",
        "values": [
            {"key": "street", "name": "In the street"},
            {"key": "crosswalk", "name": "In a crosswalk"},
            {"key": "bike-lane", "name": "In a bike lane"},
            {"key": "alley", "name": "In an alley"},
        ],
    }
    assert how_many["datatype"] == "number"
    assert how_many["required"] is False
    assert how_many["order"] == 2
    assert how_many["datatype_description"] == "a whole number"
    assert how_many["values"] == []


def test_service_definition_xml(client: Client, chicago_city):
    root = xml_of(get(client, "services/RODENT", "xml"))
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "RODENT"
    (attribute,) = root.findall("attributes/attribute")
    assert [child.tag for child in attribute] == [
        "variable",
        "code",
        "datatype",
        "required",
        "datatype_description",
        "order",
        "description",
        "values",
    ]
    assert attribute.findtext("variable") == "true"
    assert attribute.findtext("datatype") == "multivaluelist"
    assert attribute.findtext("required") == "true"
    assert attribute.findtext("order") == "1"
    values = [(v.findtext("key"), v.findtext("name")) for v in attribute.iterfind("values/value")]
    assert values == [
        ("rats", "Rats"),
        ("burrows", "Burrows"),
        ("droppings", "Droppings"),
        ("chewed-carts", "Chewed carts"),
    ]


def test_information_only_attribute_is_listed_with_variable_false(client: Client, chicago_city):
    category = ServiceCategory.objects.get(service_code="SIDEWALK")
    ServiceAttribute.objects.create(
        category=category,
        code="NOTE",
        variable=False,
        datatype="text",
        order=1,
        description="Trip hazards are fixed first",
    )
    (attribute,) = json_of(get(client, "services/SIDEWALK"))["attributes"]
    assert (attribute["code"], attribute["variable"]) == ("NOTE", False)


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("code", ["NOPE", "HYDRANT.old", "%00"])
def test_unknown_or_retired_service_is_404_in_the_format_asked(
    client: Client, chicago_city, fmt, code
):
    ServiceCategory.objects.filter(service_code="HYDRANT").update(active=False)
    response = get(client, f"services/{code}", fmt)
    assert response.status_code == 404
    ((status, description),) = errors_of(response)
    assert status == 404
    assert description.startswith("service_code: ")


def test_retired_service_definition_is_404(client: Client, chicago_city):
    ServiceCategory.objects.filter(service_code="HYDRANT").update(active=False)
    assert get(client, "services/HYDRANT").status_code == 404


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    "path", ["discovery", "services", "services/POTHOLE", "requests", "servicerequestupdates"]
)
def test_jurisdiction_id_is_accepted_everywhere_and_checked(
    client: Client, chicago_city, settings, fmt, path
):
    settings.GEO311_JURISDICTION_ID = "chicago.il.us"
    assert get(client, path, fmt, jurisdiction_id="chicago.il.us").status_code == 200
    assert get(client, path, fmt, jurisdiction_id="").status_code == 200  # empty = absent
    response = get(client, path, fmt, jurisdiction_id="evanston.il.us")
    assert response.status_code == 404
    assert errors_of(response) == [
        (404, "jurisdiction_id: this server answers for chicago.il.us, not 'evanston.il.us'")
    ]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/open311/v2/nowhere.xml", "text/xml; charset=utf-8"),
        ("/open311/v2/nowhere.json", "application/json; charset=utf-8"),
        ("/open311/v2/services.csv", "application/json; charset=utf-8"),
        ("/open311/v2/services", "application/json; charset=utf-8"),
    ],
)
def test_unknown_endpoint_is_a_404_in_the_spec_format(
    client: Client, chicago_city, path, content_type
):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == content_type
    assert errors_of(response) == [(404, f"no Open311 endpoint {path}")]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_wrong_method_is_a_405_in_the_spec_format(client: Client, chicago_city, fmt):
    response = client.post(f"/open311/v2/services.{fmt}", {})
    assert response.status_code == 405
    assert errors_of(response) == [(405, 'Method "POST" not allowed.')]
    assert client.delete(f"/open311/v2/requests.{fmt}").status_code == 405


def test_accept_header_and_format_parameter_do_not_change_the_format(client: Client, chicago_city):
    response = client.get(
        "/open311/v2/services.xml", {"format": "json"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 200
    assert xml_of(response).tag == "services"


# --- coverage: is a point served, and by whom --------------------------------------------------


def test_coverage_in_the_loop_names_areas_and_who_serves_each_service(
    client: Client, chicago_city, django_assert_num_queries
):
    with django_assert_num_queries(5):
        body = json_of(get(client, "coverage", lat=41.8781, long=-87.6298))
    assert body["served"] is True
    assert (body["jurisdiction_id"], body["lat"], body["long"]) == (
        "chicago.il.us",
        41.8781,
        -87.6298,
    )
    assert {(a["layer"], a["code"], a["name"]) for a in body["areas"]} == {
        ("city-limits", "CHICAGO", "City of Chicago"),
        ("community-areas", "32", "LOOP"),
        ("police-beats", "113", "113"),
        ("police-districts", "1", "1ST"),
        ("wards", "2", "ROBERT FIORETTI"),
    }
    services = {s["service_code"]: s for s in body["services"]}
    assert len(services) == 17
    assert services["GRAFFITI"] == {
        "service_code": "GRAFFITI",
        "service_name": "Graffiti removal",
        "served": True,
        "agency_responsible": "Streets & Sanitation",
        "team": "Graffiti Blasters North",
        "reason": "",
    }
    north_zone = Team.objects.get(slug="electrical-north")
    assert services["LIGHT_OUT"]["team"] == north_zone.name
    assert services["NOISE"]["team"] == "1st District (Central)"
    assert services["POTHOLE"]["team"] is None


def test_coverage_agrees_with_routing_for_every_service(client: Client, chicago_city):
    from django.contrib.gis.geos import Point

    from geo311.routing import route

    for lat, long in [(41.8781, -87.6298), (41.9703, -87.7614), (41.75, -87.6)]:
        body = json_of(get(client, "coverage", lat=lat, long=long))
        for service in body["services"]:
            routing = route(
                category=ServiceCategory.objects.get(service_code=service["service_code"]),
                point=Point(long, lat, srid=4326),
            )
            assert service["agency_responsible"] == routing.department.name
            assert service["team"] == (routing.team.name if routing.team else None)


def test_coverage_in_the_lake_is_not_served(client: Client, chicago_city):
    root = xml_of(get(client, "coverage", "xml", lat=41.90, long=-87.55))
    assert root.tag == "coverage"
    assert root.findtext("served") == "false"
    assert root.findall("areas/area") == []
    services = root.findall("services/service")
    assert len(services) == 17
    assert {s.findtext("served") for s in services} == {"false"}
    assert {s.findtext("reason") for s in services} == {
        "the location is outside the area this service covers"
    }
    assert services[0].findtext("agency_responsible") == ""


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"long": -87.6}, "lat: This field is required."),
        ({"lat": "nan", "long": -87.6}, "lat: A valid number is required."),
        ({"lat": 41.8, "long": 200}, "long: Ensure this value is less than or equal to 180."),
    ],
)
def test_coverage_needs_a_point(client: Client, chicago_city, params, error):
    response = get(client, "coverage", "xml", **params)
    assert response.status_code == 400
    assert errors_of(response) == [(400, error)]
