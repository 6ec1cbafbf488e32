import csv
import itertools
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from geo311.addresses import normalize_address
from geo311.models import Channel, ServiceCategory, ServiceRequest, StatusEvent
from geo311.routing import route
from importers.requests import (
    RequestImportError,
    import_request_file,
    mapping_from_dict,
    read_mapping,
    routing_agreement,
)
from tests.conftest import REPO, SHARED_DATA

pytestmark = pytest.mark.django_db

REQUESTS = SHARED_DATA / "chicago" / "requests" / "sanitation_code_complaints_2011_2014.csv"
MAPPING = REPO / "importers" / "mappings" / "chicago_sanitation.yaml"
SAMPLE = 300
LABELS = {
    "wards": "Ward",
    "community-areas": "Community_Area",
    "police-districts": "Police_District",
}


def header_and_rows(n: int, *, step: int = 1) -> tuple[list[str], list[list[str]]]:
    """``n`` real rows, every ``step``-th of the file."""
    with REQUESTS.open(newline="") as fh:
        reader = csv.reader(fh)
        return next(reader), list(itertools.islice(reader, 0, n * step, step))


def crafted(header: list[str], template: list[str], **changes: str) -> list[str]:
    row = dict(zip(header, template, strict=True))
    row.update(changes)
    return [row[c] for c in header]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """300 real rows spread over 2000-2014 (every 248th), then four crafted bad ones (rows
    302-305) and a repeat of row 2. The ward and police district maps are those of 2012: the
    first rows of the file (2000-2011) alone agree less with the 2012 police districts."""
    header, rows = header_and_rows(SAMPLE, step=248)
    good = rows[0]
    bad = [
        crafted(
            header,
            good,
            Service_Request_Number="T-1",
            Latitude="",
            Longitude="",
            X_Coordinate="",
            Y_Coordinate="",
            Location="",
        ),
        crafted(
            header, good, Service_Request_Number="T-2", Latitude="41.90", Longitude="-87.50"
        ),  # Lake Michigan
        crafted(
            header, good, Service_Request_Number="T-3", Type_of_Service_Request="Pothole in Street"
        ),
        crafted(header, good, Service_Request_Number="T-4", Creation_Date="31/12/2013"),
        crafted(header, good),  # row 306 repeats row 2's id
    ]
    path = tmp_path / "sanitation_sample.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows + bad)
    return path


def test_import_counts_rejects_events_and_rerun(chicago_city, sample, tmp_path):
    rejects = tmp_path / "rejects.csv"
    report = import_request_file(sample, mapping=read_mapping(MAPPING), rejects_path=rejects)

    assert report.rows == SAMPLE + 5
    assert report.imported + len(report.rejected) + report.present == report.rows
    by_row = {r.row: r.reason for r in report.rejected}
    assert by_row[302] == "no coordinates"
    assert by_row[303].startswith("outside the jurisdiction: in no boundary of city-limits")
    assert by_row[304] == ("unknown category: 'Pothole in Street' in Type_of_Service_Request")
    assert by_row[305] == ("unparseable date: Creation_Date '31/12/2013' (expected %Y-%m-%d)")
    assert by_row[306].startswith("repeats Service_Request_Number: 00-00002158 is already on row 2")
    assert ServiceRequest.objects.count() == report.imported == 298

    with rejects.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [int(r["row"]) for r in written] == sorted(by_row)
    lake = next(r for r in written if r["row"] == "303")
    assert lake["Service_Request_Number"] == "T-2"
    assert lake["Longitude"] == "-87.50"

    request = ServiceRequest.objects.get(public_id="00-00002158")
    assert request.channel == Channel.IMPORT
    assert request.source == "sanitation_sample.csv"
    assert request.status.code == "completed"
    assert request.requested_at.isoformat() == "2000-01-03T06:00:00+00:00"  # Chicago midnight
    assert request.closed_at.isoformat() == "2011-03-28T05:00:00+00:00"
    assert [(e.status.code, e.created_at) for e in request.events.order_by("created_at")] == [
        ("submitted", request.requested_at),
        ("completed", request.closed_at),
    ]
    assert (
        StatusEvent.objects.count()
        == 2 * report.imported - ServiceRequest.objects.filter(status__code="submitted").count()
    )

    again = import_request_file(sample, mapping=read_mapping(MAPPING))
    assert (again.imported, again.present) == (0, report.imported)
    assert len(again.rejected) == len(report.rejected)
    assert ServiceRequest.objects.count() == report.imported


def test_bulk_routing_is_what_the_python_router_says(chicago_city, sample):
    import_request_file(sample, mapping=read_mapping(MAPPING))
    category = ServiceCategory.objects.get(service_code="SAN_CODE")
    requests = list(ServiceRequest.objects.select_related("department", "team", "routing_rule"))
    assert requests
    for request in requests:
        expected = route(category=category, point=request.location)
        assert request.routing == json.loads(json.dumps(expected.as_record()))
        assert request.department == expected.department
        assert request.team == expected.team
        assert request.routing_rule == expected.rule
    # Ward 42 (the Loop) has a rule naming its code: it beats the rule for the whole layer.
    teams = {r.team.slug for r in requests if r.team}
    assert teams == {"ward-crews", "loop-crew"}


def test_agreement_with_the_city_labels(chicago_city, sample):
    import_request_file(sample, mapping=read_mapping(MAPPING))
    agreement = {
        a.layer: a
        for a in routing_agreement(sample, labels=LABELS, id_column="Service_Request_Number")
    }
    for layer in LABELS:
        assert agreement[layer].compared >= 290
        assert agreement[layer].rate >= 0.95, agreement[layer]


def test_dry_run_writes_nothing(chicago_city, sample):
    report = import_request_file(sample, mapping=read_mapping(MAPPING), dry_run=True)
    assert report.dry_run
    assert report.imported > 290
    assert ServiceRequest.objects.count() == 0
    assert StatusEvent.objects.count() == 0
    assert "Would import" in report.summary()


def test_projected_coordinates_give_the_same_routing(chicago_city, tmp_path):
    header, rows = header_and_rows(50)
    path = tmp_path / "feet.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    feet = mapping_from_dict(
        {
            "id": "Service_Request_Number",
            "service_code": "SAN_CODE",
            "created": "Creation_Date",
            "location": {"x": "X_Coordinate", "y": "Y_Coordinate", "srid": 3435},
        }
    )
    assert read_mapping(MAPPING).lat_column == "Latitude"
    report = import_request_file(path, mapping=feet)
    assert report.imported == 50
    # No status column: every row is open in the initial status, with one event.
    assert set(ServiceRequest.objects.values_list("status__code", flat=True)) == {"submitted"}
    assert StatusEvent.objects.count() == 50
    agreement = routing_agreement(path, labels=LABELS, id_column="Service_Request_Number")
    assert all(a.rate >= 0.95 for a in agreement)


def test_mapping_errors_name_the_problem(chicago_city, sample, tmp_path):
    with pytest.raises(RequestImportError, match="give either 'category'"):
        mapping_from_dict({"id": "a", "created": "b", "location": {"lat": "c", "lon": "d"}})
    with pytest.raises(RequestImportError, match="needs lat and lon"):
        mapping_from_dict({"id": "a", "created": "b", "service_code": "X", "location": {}})
    unknown = mapping_from_dict(
        {"id": "a", "created": "b", "service_code": "NOPE", "location": {"lat": "c", "lon": "d"}}
    )
    with pytest.raises(RequestImportError, match="no column"):
        import_request_file(sample, mapping=unknown)
    nope = mapping_from_dict(
        {
            "id": "Service_Request_Number",
            "created": "Creation_Date",
            "service_code": "NOPE",
            "location": {"lat": "Latitude", "lon": "Longitude"},
        }
    )
    with pytest.raises(RequestImportError, match="service code.*NOPE"):
        import_request_file(sample, mapping=nope)


def test_command(chicago_city, sample, tmp_path, capsys):
    rejects = tmp_path / "out" / "rejects.csv"
    call_command(
        "import_requests", str(sample), "--mapping", str(MAPPING), "--rejects", str(rejects)
    )
    out = capsys.readouterr().out
    # Two of the real rows lie just outside the city-limits outline.
    assert f"298 imported + 7 rejected + 0 already present = {SAMPLE + 5}" in out
    assert "rejected      2  no coordinates" in out  # one real, one crafted
    assert rejects.exists()
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_requests", str(tmp_path / "nope.csv"), "--mapping", str(MAPPING))


def test_imported_requests_carry_the_normal_form_of_their_address(chicago_city, tmp_path):
    header, rows = header_and_rows(40)
    spelled = {
        "T-10": "1600 West North Avenue",
        "T-11": "1600 w. north ave",
        "T-12": "233 South Wacker Drive, Suite 100",
        "T-13": "",
    }
    extra = [
        crafted(header, rows[0], Service_Request_Number=n, Street_Address=a)
        for n, a in spelled.items()
    ]
    path = tmp_path / "spellings.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows, *extra])

    report = import_request_file(path, mapping=read_mapping(MAPPING))

    assert report.imported == 44
    keys = dict(ServiceRequest.objects.values_list("public_id", "address_key"))
    assert keys["T-10"] == keys["T-11"] == "1600 W NORTH AVE"
    assert keys["T-12"] == "233 S WACKER DR STE 100"
    assert keys["T-13"] == ""
    # Every row: the form request_create gives an address, so duplicate detection compares
    # imported and new requests alike.
    for address, key in ServiceRequest.objects.values_list("address", "address_key"):
        assert key == (normalize_address(address) if address.strip() else "")
    assert sum(bool(k) for k in keys.values()) == 43


def test_a_file_with_no_routable_row_imports_nothing_and_says_why(chicago_city, tmp_path):
    header, rows = header_and_rows(3)
    unplaced = [
        crafted(header, row, Latitude="", Longitude="", X_Coordinate="", Y_Coordinate="")
        for row in rows
    ]
    path = tmp_path / "no_points.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *unplaced])

    report = import_request_file(path, mapping=read_mapping(MAPPING))

    assert (report.imported, report.present) == (0, 0)
    assert [(r.row, r.reason) for r in report.rejected] == [
        (2, "no coordinates"),
        (3, "no coordinates"),
        (4, "no coordinates"),
    ]
    assert not ServiceRequest.objects.exists()
