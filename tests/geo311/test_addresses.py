import pytest
from django.contrib.gis.geos import Point

from geo311.addresses import (
    AddressNotFound,
    address_get,
    address_parts,
    address_resolve,
    normalize_address,
)
from geo311.models import AddressPoint


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("1600 West North Avenue, Apt. 3", "1600 W NORTH AVE APT 3"),
        ("1600 north ave", "1600 NORTH AVE"),  # North Avenue, not a direction
        ("224 W St. Paul Av", "224 W ST PAUL AVE"),  # ST in a name is not a suffix
        ("4853 S WOOD", "4853 S WOOD"),
        ("  1  e.  wacker   drive, suite 200 ", "1 E WACKER DR STE 200"),
        ("100 N Lake Shore Drive East", "100 N LAKE SHORE DR E"),
        ("100 Main Str #3", "100 MAIN ST UNIT 3"),
        ("100 main street apt #3", "100 MAIN ST APT 3"),
        ("100 W Front St", "100 W FRONT ST"),
        ("100 Main St Rear", "100 MAIN ST REAR"),
        ("5 O'Brien Court", "5 OBRIEN CT"),
        ("107-22 71st Road", "107-22 71ST RD"),
        ("123 1/2 Elm Boulevard", "123 1/2 ELM BLVD"),
        ("9 Northeast Parkway", "9 NORTHEAST PKWY"),
        ("9 Southwest Oak Lane", "9 SW OAK LN"),
        ("10 Garden Terrace", "10 GARDEN TER"),
        ("10 Route 66 Highway", "10 ROUTE 66 HWY"),
        ("10 Elm Place", "10 ELM PL"),
        ("100 Parkway", "100 PARKWAY"),  # a street called Parkway
        ("Avenue N", "AVENUE N"),
    ],
)
def test_normalize_address(text, normal):
    assert normalize_address(text) == normal


def test_normal_form_is_stable():
    once = normalize_address("1600 West North Avenue, Apartment 3")
    assert normalize_address(once) == once


def test_parts():
    parts = address_parts("100 North State Street Suite 5")
    assert (parts.number, parts.pre_direction, parts.name, parts.suffix, parts.unit) == (
        "100",
        "N",
        "STATE",
        "ST",
        "STE 5",
    )
    assert parts.street_line == "100 N STATE ST"


def point(address: str, lon: float, lat: float, *, zipcode: str = "", address_id: str = ""):
    return AddressPoint.objects.create(
        address=address,
        normalized=normalize_address(address),
        zipcode=zipcode,
        address_id=address_id,
        location=Point(lon, lat, srid=4326),
        source="test",
    )


@pytest.mark.django_db
def test_resolve_matches_spelling_variants_and_falls_back_from_unit_to_building():
    state = point("121 N LA SALLE ST", -87.6322, 41.8837, address_id="A1")
    assert address_resolve(address_string="121 North La Salle Street") == state
    assert address_resolve(address_string="121 n. la salle st., Chicago, IL 60602") == state
    assert address_resolve(address_string="121 N La Salle St Suite 300") == state
    assert address_get(address_id="A1") == state


@pytest.mark.django_db
def test_resolve_names_the_address_it_cannot_find():
    with pytest.raises(AddressNotFound, match="'1 Nowhere Lane'"):
        address_resolve(address_string="1 Nowhere Lane")
    with pytest.raises(AddressNotFound, match="not a street address"):
        address_resolve(address_string="  ,, ")
    with pytest.raises(AddressNotFound, match="'X9'"):
        address_get(address_id="X9")


@pytest.mark.django_db
def test_ambiguous_address_takes_the_place_most_points_agree_on_or_asks_for_a_zip():
    # Two entrances of one building and a stray geocode 5 km away: the building wins.
    a = point("100 W ELM ST", -87.6300, 41.9030)
    point("100 W ELM ST", -87.6301, 41.9031)
    point("100 W ELM ST", -87.6800, 41.8700)
    assert address_resolve(address_string="100 West Elm Street") == a
    # The same address in two ZIP codes, far apart: no majority, so the ZIP code decides.
    north = point("10 E OAK ST", -87.62, 41.90, zipcode="60611")
    south = point("10 E OAK ST", -87.62, 41.70, zipcode="60628")
    with pytest.raises(AddressNotFound, match="60611, 60628"):
        address_resolve(address_string="10 E Oak St")
    assert address_resolve(address_string="10 E Oak St", zipcode="60628") == south
    assert address_resolve(address_string="10 E Oak St, Chicago IL 60611") == north
