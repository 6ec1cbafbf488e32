import datetime as dt
import json
import shutil
import zipfile
from pathlib import Path

import pyogrio
import pytest
from django.contrib.gis.geos import Point
from django.core.management import CommandError, call_command

from boundaries.models import Boundary, BoundaryPart, Layer, LayerVersion, VersionStatus
from boundaries.selectors import boundaries_containing, version_extent
from importers.boundaries import BoundaryImportError, import_boundary_file
from tests.conftest import CHICAGO, LOOP, NYC

pytestmark = pytest.mark.django_db

NO_PRJ = CHICAGO / "community_areas_shapefile_no_prj" / "Chicago77.shp"


def loop_codes(layer: str) -> list[str]:
    point = Point(LOOP[1], LOOP[0], srid=4326)
    return [b.code for b in boundaries_containing(point=point, layers=[layer])]


def db_state() -> tuple[int, int, int, int]:
    return (
        Layer.objects.count(),
        LayerVersion.objects.count(),
        Boundary.objects.count(),
        BoundaryPart.objects.count(),
    )


# --- formats -------------------------------------------------------------------------------


def test_geojson_import_creates_an_active_first_version_with_parts():
    report = import_boundary_file(
        CHICAGO / "community_areas.geojson",
        layer="community-areas",
        code_field="AREA_NUMBE",
        name_field="COMMUNITY",
    )
    version = LayerVersion.objects.get(layer__slug="community-areas")
    assert (report.features, report.version, report.status) == (77, 1, "active")
    assert version.status == VersionStatus.ACTIVE
    assert version.feature_count == 77 == version.boundaries.count()
    assert version.source_crs == "EPSG:4326"
    assert len(version.checksum) == 64
    # Every boundary has lookup pieces, and no piece exceeds the configured vertex budget + ring
    # closure.
    assert BoundaryPart.objects.filter(version=version).values("boundary").distinct().count() == 77
    assert BoundaryPart.objects.filter(version=version).count() > 77
    loop = Boundary.objects.get(version=version, code="32")
    assert loop.name == "LOOP"
    assert loop.attributes["COMMUNITY"] == "LOOP"
    assert loop_codes("community-areas") == ["32"]


def test_zipped_shapefile_with_prj_imports():
    report = import_boundary_file(
        CHICAGO / "police_districts_2012_shapefile.zip",
        layer="police-districts",
        code_field="dist_num",
        name_field="dist_label",
        merge_duplicates=True,
    )
    assert report.features == 23
    assert report.source_crs == "EPSG:4326"
    assert any("merged features 3, 4, 8 into code 31" in n for n in report.notes)
    assert loop_codes("police-districts") == ["1"]


def test_geopackage_imports_its_only_layer():
    report = import_boundary_file(
        CHICAGO / "wards_2003_2015.gpkg", layer="wards", code_field="ward", exclude_codes={"OUT"}
    )
    assert report.source_layer == "wards"
    assert report.features == 50
    assert any("excluded 3 feature(s) with code(s) OUT" in n for n in report.notes)
    assert loop_codes("wards") == ["2"]


def test_kml_imports(tmp_path: Path):
    # A KML file as Google Earth users send it, made from the real police districts.
    kml = tmp_path / "districts.kml"
    df = pyogrio.read_dataframe(CHICAGO / "police_districts_2012.geojson")
    pyogrio.write_dataframe(df, kml, driver="KML")
    report = import_boundary_file(
        kml, layer="districts-kml", code_field="dist_num", merge_duplicates=True
    )
    assert report.features == 23
    assert loop_codes("districts-kml") == ["1"]


# --- CRS --------------------------------------------------------------------------------------


def test_shapefile_without_prj_fails_and_names_srid():
    with pytest.raises(BoundaryImportError, match=r"has no CRS.*--srid") as err:
        import_boundary_file(NO_PRJ, layer="ca", code_field="AREA_NUMBE")
    assert "3435" in str(err.value)
    assert db_state() == (0, 0, 0, 0)


def test_shapefile_without_prj_imports_with_srid_and_lands_on_chicago():
    report = import_boundary_file(
        NO_PRJ, layer="ca", code_field="AREA_NUMBE", name_field="COMMUNITY", srid=3435
    )
    assert report.features == 77
    assert report.source_crs == "EPSG:3435"
    assert loop_codes("ca") == ["32"]
    version = LayerVersion.objects.get(layer__slug="ca")
    west, south, east, north = version_extent(version=version)
    assert -88.0 < west < east < -87.5
    assert 41.6 < south < north < 42.1


def test_wrong_srid_that_leaves_lat_long_is_refused():
    with pytest.raises(BoundaryImportError, match="outside valid longitude/latitude"):
        import_boundary_file(NO_PRJ, layer="ca", code_field="AREA_NUMBE", srid=4326)
    assert db_state() == (0, 0, 0, 0)


def test_unknown_srid_is_refused():
    with pytest.raises(BoundaryImportError, match="--srid 999999 is not a known EPSG code"):
        import_boundary_file(NO_PRJ, layer="ca", code_field="AREA_NUMBE", srid=999999)


# --- bad files: refused whole, database unchanged -----------------------------------------------


def test_corrupt_zip_is_refused(tmp_path: Path):
    good = (CHICAGO / "police_districts_2012_shapefile.zip").read_bytes()
    bad = tmp_path / "districts.zip"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(BoundaryImportError, match="not a readable zip archive|corrupt"):
        import_boundary_file(bad, layer="pd", code_field="dist_num")
    assert db_state() == (0, 0, 0, 0)


def test_zip_without_boundary_file_is_refused(tmp_path: Path):
    archive = tmp_path / "notes.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "nothing here")
    with pytest.raises(BoundaryImportError, match="holds no boundary file"):
        import_boundary_file(archive, layer="pd")


def test_empty_file_is_refused(tmp_path: Path):
    empty = tmp_path / "wards.geojson"
    empty.write_bytes(b"")
    with pytest.raises(BoundaryImportError, match=r"is empty \(0 bytes\)"):
        import_boundary_file(empty, layer="wards")


def test_feature_collection_without_features_is_refused(tmp_path: Path):
    empty = tmp_path / "wards.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(BoundaryImportError, match="has no features|no layers|cannot be read"):
        import_boundary_file(empty, layer="wards")
    assert db_state() == (0, 0, 0, 0)


def test_file_of_points_is_refused_with_feature_numbers(tmp_path: Path):
    points = tmp_path / "points.geojson"
    points.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"code": str(i)},
                        "geometry": {"type": "Point", "coordinates": [-87.6 + i / 100, 41.8]},
                    }
                    for i in range(3)
                ],
            }
        )
    )
    with pytest.raises(BoundaryImportError) as err:
        import_boundary_file(points, layer="wards", code_field="code")
    assert "nothing was imported" in str(err.value)
    assert err.value.problems == [f"feature {n}: is a Point, not a polygon" for n in (1, 2, 3)]
    assert db_state() == (0, 0, 0, 0)


def test_geopackage_with_two_layers_needs_source_layer(tmp_path: Path):
    two = tmp_path / "two.gpkg"
    shutil.copy(CHICAGO / "wards_2003_2015.gpkg", two)
    districts = pyogrio.read_dataframe(CHICAGO / "police_districts_2012.geojson")
    pyogrio.write_dataframe(districts, two, layer="districts", append=True)
    with pytest.raises(
        BoundaryImportError, match=r"has 2 layers \(.*wards.*districts.*--source-layer"
    ):
        import_boundary_file(two, layer="wards", code_field="ward")
    with pytest.raises(BoundaryImportError, match="has no layer 'nope'"):
        import_boundary_file(two, layer="wards", source_layer="nope")
    report = import_boundary_file(
        two, layer="pd", source_layer="districts", code_field="dist_num", merge_duplicates=True
    )
    assert report.features == 23


def test_duplicate_and_empty_codes_are_refused_whole(tmp_path: Path):
    with pytest.raises(BoundaryImportError) as err:
        import_boundary_file(CHICAGO / "wards_2003_2015.geojson", layer="wards", code_field="ward")
    assert "--merge-duplicates" in str(err.value)
    assert err.value.problems == [
        "feature 46: code 'OUT' is already used by feature 5",
        "feature 50: code 'OUT' is already used by feature 5",
    ]
    collection = json.loads((CHICAGO / "police_districts_2012.geojson").read_text())
    collection["features"][2]["properties"]["dist_num"] = ""
    blank = tmp_path / "blank.geojson"
    blank.write_text(json.dumps(collection))
    with pytest.raises(BoundaryImportError) as err:
        import_boundary_file(blank, layer="pd", code_field="dist_num", merge_duplicates=True)
    assert "feature 3: empty code in field 'dist_num'" in err.value.problems
    assert db_state() == (0, 0, 0, 0)


def test_unknown_code_field_lists_the_fields():
    with pytest.raises(BoundaryImportError, match=r"no field 'nope'.*AREA_NUMBE"):
        import_boundary_file(CHICAGO / "community_areas.geojson", layer="ca", code_field="nope")


def test_invalid_polygons_are_repaired_and_named():
    report = import_boundary_file(NYC / "boundaries" / "schooldist.geojson", layer="schooldist")
    assert report.features == 32
    # The two polygons invalid in the file, named; any polygon that reprojection to 4326 makes
    # invalid is repaired and named too.
    in_file = [r for r in report.repaired if "after reprojection" not in r]
    assert len(in_file) == 2
    assert in_file[0].startswith("feature 17 (code 17): Ring Self-intersection")
    assert in_file[1].startswith("feature 24 (code 24): Ring Self-intersection")
    assert report.source_crs == "EPSG:2263"
    assert (
        not Boundary.objects.filter(version__layer__slug="schooldist")
        .extra(where=["NOT ST_IsValid(geom)"])
        .exists()
    )


# --- versions -------------------------------------------------------------------------------


def test_second_import_is_staged_and_dry_run_writes_nothing():
    import_boundary_file(
        CHICAGO / "wards_2003_2015.geojson",
        layer="wards",
        code_field="ward",
        exclude_codes={"OUT"},
    )
    before = db_state()
    preview = import_boundary_file(
        CHICAGO / "wards_2015.geojson", layer="wards", code_field="ward", dry_run=True
    )
    assert db_state() == before
    assert preview.dry_run
    assert preview.compared_with == 1
    # Both maps have wards 1-50: none added or removed, nearly all redrawn.
    assert (preview.added, preview.removed) == ([], [])
    assert len(preview.changed) >= 45
    ward_36 = next(c for c in preview.changed if c["code"] == "36")
    assert ward_36["area_change_pct"] == pytest.approx(-52.0, abs=1.0)

    staged = import_boundary_file(
        CHICAGO / "wards_2015.geojson",
        layer="wards",
        code_field="ward",
        effective_from=dt.date(2015, 5, 18),
    )
    assert (staged.version, staged.status) == (2, "staged")
    assert loop_codes("wards") == ["2"]  # still the 2003 map

    call_command("activate_boundaries", "wards", "2")
    v1, v2 = LayerVersion.objects.filter(layer__slug="wards").order_by("number")
    assert (v1.status, v2.status) == ("retired", "active")
    assert str(v1.effective_to) == str(v2.effective_from) == "2015-05-18"
    assert loop_codes("wards") == ["4"]  # the 2015 map
    assert Boundary.objects.filter(version=v1).count() == 50  # history kept


def test_reimporting_the_same_file_changes_nothing():
    first = import_boundary_file(
        CHICAGO / "community_areas.geojson", layer="ca", code_field="AREA_NUMBE"
    )
    before = db_state()
    again = import_boundary_file(
        CHICAGO / "community_areas.geojson", layer="ca", code_field="AREA_NUMBE"
    )
    assert again.unchanged
    assert again.version == first.version
    assert db_state() == before
    forced = import_boundary_file(
        CHICAGO / "community_areas.geojson", layer="ca", code_field="AREA_NUMBE", force=True
    )
    assert (forced.version, forced.status) == (2, "staged")


def test_import_report_is_kept_on_the_version():
    import_boundary_file(NYC / "boundaries" / "schooldist.geojson", layer="schooldist")
    version = LayerVersion.objects.get(layer__slug="schooldist")
    assert version.report["features"] == 32
    assert version.report["repaired"][:2] == [
        r for r in version.report["repaired"] if "after reprojection" not in r
    ]
    assert any("feature 17 (code 17)" in r for r in version.report["repaired"])


# --- commands -------------------------------------------------------------------------------


def test_command_prints_summary(capsys: pytest.CaptureFixture[str]):
    call_command(
        "import_boundaries",
        str(NYC / "boundaries" / "schooldist.geojson"),
        "--layer",
        "schooldist",
        "--kind",
        "department_district",
    )
    out = capsys.readouterr()
    assert "Imported 32 boundaries" in out.out
    assert "invalid polygon(s):" in out.out
    assert "feature 17 (code 17)" in out.out
    assert "read 32 features" in out.err  # progress goes to stderr
    assert Layer.objects.get(slug="schooldist").kind == "department_district"


def test_command_errors_are_command_errors():
    with pytest.raises(CommandError, match="has no CRS"):
        call_command("import_boundaries", str(NO_PRJ), "--layer", "ca")
    with pytest.raises(CommandError, match="no layer 'nope'"):
        call_command("check_boundaries", "nope")
    with pytest.raises(CommandError, match="has no version 7"):
        call_command("activate_boundaries", "nope", "7")
