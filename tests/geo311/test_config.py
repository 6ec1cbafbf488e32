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
    Status,
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
