from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from geo311.config import CityConfigError, city_config_load, read_config
from geo311.models import (
    Department,
    RoutingRule,
    ServiceAttribute,
    ServiceCategory,
    ServiceLevel,
    Status,
    StatusTransition,
)
from tests.conftest import DEMO

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_layers(db):  # type: ignore[no-untyped-def]
    from importers.manifest import import_manifest

    import_manifest(DEMO / "layers.json")


def test_demo_config_loads_every_open311_datatype(demo_layers, capsys):
    call_command("load_city_config", str(DEMO / "city.yaml"))
    assert "17 categories" in capsys.readouterr().out
    assert ServiceCategory.objects.count() == 17
    assert set(ServiceAttribute.objects.values_list("datatype", flat=True)) == {
        "string",
        "number",
        "datetime",
        "text",
        "singlevaluelist",
        "multivaluelist",
    }
    assert Status.objects.get(is_initial=True).code == "submitted"
    assert set(Status.objects.filter(open311_status="closed").values_list("code", flat=True)) == {
        "completed",
        "duplicate",
        "rejected",
        "not-our-responsibility",
    }
    groups = set(ServiceCategory.objects.values_list("group", flat=True))
    assert {"Streets", "Sanitation", "Lights", "Parks", "Graffiti"} <= groups
    layers = set(RoutingRule.objects.values_list("layer__slug", flat=True))
    assert {"wards", "community-areas", "police-districts", "police-beats"} <= layers
    nature = ServiceAttribute.objects.get(category__service_code="SAN_CODE", code="NATURE")
    assert [v.key for v in nature.values.all()][:2] == ["overflowing-carts", "garbage-in-alley"]


def test_loading_twice_keeps_one_of_everything_and_admin_edits_to_names_are_reloaded(
    demo_layers,
):
    data = read_config(DEMO / "city.yaml")
    city_config_load(data=data)
    Department.objects.filter(slug="parks").update(name="Parks (edited)")
    report = city_config_load(data=data)
    assert report.categories == 17
    assert Department.objects.count() == 7
    assert Department.objects.get(slug="parks").name == "Chicago Park District"
    assert RoutingRule.objects.count() == report.rules


def test_a_question_dropped_from_the_file_is_removed(demo_layers, tmp_path: Path):
    data = read_config(DEMO / "city.yaml")
    city_config_load(data=data)
    pothole = next(c for c in data["categories"] if c["code"] == "POTHOLE")
    pothole["attributes"] = pothole["attributes"][1:]  # drop WHERE
    city_config_load(data=data)
    codes = list(
        ServiceAttribute.objects.filter(category__service_code="POTHOLE").values_list(
            "code", "order"
        )
    )
    assert codes == [("HOW_MANY", 1)]


def test_every_bad_entry_is_named_and_nothing_is_loaded(demo_layers, tmp_path: Path):
    bad = tmp_path / "city.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "statuses": [{"code": "new", "open311": "pending", "initial": True}],
                "departments": [{"slug": "roads", "name": "Roads"}],
                "categories": [
                    {"code": "A", "name": "A", "department": "nope"},
                    {
                        "code": "B",
                        "name": "B",
                        "department": "roads",
                        "attributes": [{"code": "Q", "datatype": "color"}],
                    },
                ],
                "rules": [
                    {"category": "ZZZ", "department": "roads"},
                    {"layer": "rivers", "department": "roads"},
                ],
            }
        )
    )
    with pytest.raises(CommandError) as exc:
        call_command("load_city_config", str(bad))
    message = str(exc.value)
    assert "nothing was loaded" in message
    for problem in [
        "statuses[1] (new): open311 must be 'open' or 'closed'",
        "categories[1] (A): unknown department 'nope'",
        "categories[2] (B).attributes[1] (Q): datatype must be one of",
        "rules[1]: unknown category 'ZZZ'",
        "rules[2]: unknown layer 'rivers' (load it first)",
        "statuses: one status must be marked initial: true",
    ]:
        assert problem in message
    assert not Department.objects.exists()


def test_unreadable_file_is_a_clear_error(tmp_path: Path):
    broken = tmp_path / "city.yaml"
    broken.write_text("departments: [unclosed")
    with pytest.raises(CityConfigError, match="cannot read"):
        read_config(broken)


def test_transitions_and_service_levels_load_from_the_demo(demo_layers):
    report = city_config_load(data=read_config(DEMO / "city.yaml"))
    assert report.transitions == StatusTransition.objects.count() == 21
    allowed = set(StatusTransition.objects.values_list("from_status__code", "to_status__code"))
    assert ("submitted", "acknowledged") in allowed
    assert ("submitted", "completed") not in allowed
    assert not any(target == "duplicate" for _, target in allowed)
    assert StatusTransition.objects.get(
        from_status__code="submitted", to_status__code="rejected"
    ).note_required
    assert Status.objects.get(is_duplicate=True).code == "duplicate"
    pothole = ServiceLevel.objects.filter(category__service_code="POTHOLE")
    assert {
        (lv.layer.slug if lv.layer else None, lv.boundary_code, lv.hours) for lv in pothole
    } == {
        (None, "", 72),
        ("wards", "42", 24),
    }


def test_reloading_keeps_unchanged_rules_transitions_and_levels(demo_layers):
    data = read_config(DEMO / "city.yaml")
    city_config_load(data=data)
    rules = set(RoutingRule.objects.values_list("pk", flat=True))
    transitions = set(StatusTransition.objects.values_list("pk", flat=True))
    levels = set(ServiceLevel.objects.values_list("pk", flat=True))
    city_config_load(data=data)
    # Same rows: requests routed by a rule keep their link to it, the audit trail stays quiet.
    assert set(RoutingRule.objects.values_list("pk", flat=True)) == rules
    assert set(StatusTransition.objects.values_list("pk", flat=True)) == transitions
    assert set(ServiceLevel.objects.values_list("pk", flat=True)) == levels
    data["transitions"]["completed"] = []
    data["service_levels"] = [lv for lv in data["service_levels"] if lv["category"] != "NOISE"]
    city_config_load(data=data)
    assert not StatusTransition.objects.filter(from_status__code="completed").exists()
    assert not ServiceLevel.objects.filter(category__service_code="NOISE").exists()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"transitions": {"submitted": ["fixed"]}},
            "transitions.submitted[1]: unknown status 'fixed'",
        ),
        (
            {"transitions": {"submitted": ["submitted"]}},
            "transitions.submitted[1]: a transition must change the status",
        ),
        (
            {"transitions": {"submitted": ["duplicate"]}},
            "'duplicate' is the duplicate status; only a merge gives it",
        ),
        (
            {"service_levels": [{"category": "POTHOLE", "hours": "soon"}]},
            "service_levels[1]: hours must be a whole number of at least 1, got 'soon'",
        ),
        (
            {"service_levels": [{"category": "POTHOLE", "hours": 5, "layer": "wards"}]},
            "service_levels[1]: a zone names both layer and boundary_code",
        ),
        (
            {"service_levels": [{"category": "NOPE", "hours": 5}]},
            "service_levels[1]: unknown category 'NOPE'",
        ),
    ],
)
def test_bad_transitions_and_levels_are_named(demo_layers, change, problem):
    data = read_config(DEMO / "city.yaml")
    data.update(change)
    with pytest.raises(CityConfigError) as exc:
        city_config_load(data=data)
    assert problem in str(exc.value)


def test_a_duplicate_status_must_be_closed_and_single(demo_layers):
    data = read_config(DEMO / "city.yaml")
    data["statuses"][0]["duplicate"] = True  # "submitted" is open
    with pytest.raises(CityConfigError, match="at most one status may be marked duplicate"):
        city_config_load(data=data)
    data["statuses"][-3]["duplicate"] = False  # the demo's own duplicate status
    with pytest.raises(CityConfigError, match="the duplicate status must be closed"):
        city_config_load(data=data)
