"""Denominators for rates: real NYC tax lots with their estimated residents, from a CSV or a
GeoPackage; bad rows reported and left out."""

import csv
import itertools

import geopandas as gpd
import pytest
from django.core.management import CommandError, call_command

from maps.denominators import read_denominator_points
from maps.models import Denominator
from tests.conftest import NYC

pytestmark = pytest.mark.django_db

LOTS = NYC / "points" / "tax_lot_points_2023.csv"


@pytest.fixture
def lots_csv(tmp_path):
    """500 real tax lots, then a lot without coordinates and one with a negative value."""
    with LOTS.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(itertools.islice(reader, 500))
        fields = reader.fieldnames
    bad = [{**rows[0], "latitude": ""}, {**rows[1], "bbl_population_estimate": "-3"}]
    path = tmp_path / "lots.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows + bad)
    return path, sum(float(r["bbl_population_estimate"]) for r in rows)


def test_residents_of_the_tax_lots_are_loaded(lots_csv, capsys):
    path, residents = lots_csv
    call_command(
        "load_denominator", str(path), "--slug", "residents", "--name", "Residents",
        "--unit", "residents", "--value-field", "bbl_population_estimate",
    )  # fmt: skip
    out = capsys.readouterr()
    assert "500 points" in out.out
    assert "row 502: no valid longitude/latitude" in out.err
    assert "row 503: bbl_population_estimate is not a number ≥ 0" in out.err
    denominator = Denominator.objects.get(slug="residents")
    assert denominator.points.count() == 500
    total = sum(denominator.points.values_list("value", flat=True))
    assert total == pytest.approx(residents)
    first = denominator.points.order_by("pk").first()
    assert (round(first.location.x, 7), round(first.location.y, 7)) == (-74.0176216, 40.6470537)
    # Loading again replaces the points.
    call_command(
        "load_denominator", str(path), "--slug", "residents", "--name", "Residents",
        "--unit", "residents", "--value-field", "bbl_population_estimate",
    )  # fmt: skip
    assert Denominator.objects.get(slug="residents").points.count() == 500


def test_a_geopackage_in_another_crs_is_read(lots_csv, tmp_path):
    path, _ = lots_csv
    frame = gpd.read_file(path)
    frame = frame[frame["latitude"] != ""]
    lots = gpd.GeoDataFrame(
        {"residents": frame["bbl_population_estimate"].astype(float).clip(lower=0)},
        geometry=gpd.points_from_xy(
            frame["longitude"].astype(float), frame["latitude"].astype(float)
        ),
        crs=4326,
    ).to_crs(2263)  # NY Long Island, US feet
    gpkg = tmp_path / "lots.gpkg"
    lots.to_file(gpkg, driver="GPKG")
    read = read_denominator_points(gpkg, value_field="residents")
    assert len(read.points) == len(lots) == 501
    assert read.points[0][0] == pytest.approx(-74.0176216, abs=1e-6)
    assert read.points[0][1] == pytest.approx(40.6470537, abs=1e-6)


def test_dry_runs_and_wrong_columns(lots_csv):
    path, _ = lots_csv
    call_command(
        "load_denominator", str(path), "--slug", "residents", "--name", "Residents",
        "--unit", "residents", "--value-field", "bbl_population_estimate", "--dry-run",
    )  # fmt: skip
    assert not Denominator.objects.exists()
    with pytest.raises(CommandError, match="has no column people"):
        call_command(
            "load_denominator", str(path), "--slug", "r", "--name", "R", "--unit", "u",
            "--value-field", "people",
        )  # fmt: skip
