import csv
import gzip
import itertools

import geopandas
import pytest
from django.core.management import CommandError, call_command

from geo311.addresses import address_resolve
from geo311.models import AddressPoint
from importers.addresses import AddressImportError, import_address_file
from tests.conftest import DEMO, SHARED_DATA

pytestmark = pytest.mark.django_db

REQUESTS = SHARED_DATA / "chicago" / "requests" / "sanitation_code_complaints_2011_2014.csv"


def write_csv(path, header, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def chicago_rows(n: int) -> tuple[list[str], list[list[str]]]:
    with REQUESTS.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(itertools.islice(reader, n))


def test_demo_addresses_load_once_and_resolve():
    report = import_address_file(DEMO / "addresses.csv.gz")
    with gzip.open(DEMO / "addresses.csv.gz", "rt") as fh:
        rows = sum(1 for _ in fh) - 1
    assert (report.rows, report.imported, report.rejected) == (rows, rows, [])
    assert AddressPoint.objects.count() == rows
    point = address_resolve(address_string="4853 South Wood")
    assert point.address_id.startswith("CHI")
    assert point.location.y == pytest.approx(41.8058, abs=0.001)
    assert address_resolve(address_string="1 East 68th Street").zipcode == "60637"
    again = import_address_file(DEMO / "addresses.csv.gz")
    assert again.unchanged
    assert AddressPoint.objects.count() == rows


def test_rejects_are_reported_with_row_numbers_and_good_rows_load(tmp_path):
    path = write_csv(
        tmp_path / "points.csv",
        ["id", "Address", "Zip", "Lat", "Lon"],
        [
            ["1", "100 N State Street", "60602.0", "41.8826", "-87.6278"],  # row 2
            ["2", "", "60602", "41.88", "-87.62"],  # row 3: no address
            ["3", "5 W Elm St", "", "", ""],  # row 4: no coordinates
            ["4", "6 W Elm St", "", "north", "-87.6"],  # row 5: not numbers
            ["5", "7 W Elm St", "", "1163839", "1872587"],  # row 6: feet, not degrees
            ["6", "8 W Elm St", "", "41.9", "-87.63"],  # row 7
        ],
    )
    report = import_address_file(path, id_field="id")
    assert report.rows == 6
    assert report.imported == 2
    assert [(r.row, r.reason.split(" (")[0]) for r in report.rejected] == [
        (3, "no address"),
        (4, "no coordinates"),
        (5, "coordinates are not numbers"),
        (6, "coordinates out of range"),
    ]
    state = AddressPoint.objects.get(address_id="1")
    assert (state.normalized, state.zipcode, state.source) == ("100 N STATE ST", "60602", path.name)
    assert "row 6: coordinates out of range" in report.summary()


def test_projected_coordinates_with_srid_replace_and_dry_run(tmp_path):
    header, rows = chicago_rows(20)
    path = write_csv(tmp_path / "chicago.csv", header, rows)
    options = {
        "address_field": "Street_Address",
        "zip_field": "ZIP_Code",
        "x_field": "X_Coordinate",
        "y_field": "Y_Coordinate",
        "srid": 3435,
    }
    dry = import_address_file(path, dry_run=True, **options)
    assert dry.imported == 20
    assert AddressPoint.objects.count() == 0
    report = import_address_file(path, **options)
    assert report.imported == 20
    first = AddressPoint.objects.get(normalized="4853 S WOOD")
    # Illinois East feet → WGS84 agrees with the file's own Latitude/Longitude to a metre.
    assert first.location.x == pytest.approx(float(rows[0][14]), abs=1e-5)
    assert first.location.y == pytest.approx(float(rows[0][13]), abs=1e-5)
    replaced = import_address_file(path, replace=True, **options)
    assert (replaced.replaced, replaced.imported) == (20, 20)
    assert AddressPoint.objects.count() == 20


def test_gdal_point_file(tmp_path):
    path = tmp_path / "points.gpkg"
    # EPSG:3435 feet: the importer transforms the file's own CRS to 4326.
    points = geopandas.GeoDataFrame(
        {"ADDRESS": ["100 N STATE ST", "8 W ELM ST"]},
        geometry=geopandas.points_from_xy([-87.6278, -87.63], [41.8826, 41.9]),
        crs=4326,
    ).to_crs(3435)
    points.to_file(path, layer="points", engine="pyogrio")
    report = import_address_file(path)
    assert (report.imported, report.rejected) == (2, [])
    assert address_resolve(address_string="8 West Elm Street").location.y == pytest.approx(41.9)


def test_command(tmp_path, capsys):
    header, rows = chicago_rows(5)
    path = write_csv(tmp_path / "chicago.csv", header, rows)
    call_command("import_addresses", str(path), "--address-field", "Street_Address")
    assert "Imported 5 of 5 address points from chicago.csv; rejected 0" in capsys.readouterr().out
    call_command("import_addresses", str(path))
    assert "already loaded" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no field 'Nope'"):
        call_command("import_addresses", str(path), "--address-field", "Nope", "--replace")
    with pytest.raises(CommandError, match="need each other and --srid"):
        call_command("import_addresses", str(path), "--x-field", "X_Coordinate", "--replace")


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(AddressImportError, match="no such file"):
        import_address_file(tmp_path / "nope.csv")
