import pytest
from django.core.management import call_command

from importers.boundaries import import_boundary_file
from tests.conftest import CHICAGO
from tests.factories import BoundaryFactory, LayerFactory, LayerVersionFactory, box

pytestmark = pytest.mark.django_db


def test_check_boundaries_reports_and_exits_nonzero(capsys: pytest.CaptureFixture[str]):
    version = LayerVersionFactory(layer=LayerFactory(slug="zones"))
    BoundaryFactory(version=version, code="A", geom=box(0.0, 0.0, 0.11, 0.1))
    BoundaryFactory(version=version, code="B", geom=box(0.1, 0.0, 0.2, 0.1))
    with pytest.raises(SystemExit) as exit_:
        call_command("check_boundaries", "zones")
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "zones v" in out
    assert "1 overlap(s), 0 gap(s) above 1 m²" in out
    assert "overlap A / B: 12,309,066.0 m² at 0.050000, 0.105000" in out  # 0.01° × 0.1°


def test_real_chicago_community_areas_show_the_enclaves_as_gaps(
    capsys: pytest.CaptureFixture[str],
):
    import_boundary_file(CHICAGO / "community_areas.geojson", layer="ca", code_field="AREA_NUMBE")
    with pytest.raises(SystemExit):
        call_command("check_boundaries", "ca", "--tolerance", "1000")
    out = capsys.readouterr().out
    # No overlaps; three holes that are not Chicago: the Norridge / Harwood Heights enclave
    # (about 8 km²) and two smaller ones.
    assert "0 overlap(s), 3 gap(s) above 1000 m²" in out
    assert "gap: 7,992,0" in out
    assert "at 41.96" in out
