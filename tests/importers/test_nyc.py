"""All 7 NYC layers (EPSG:2263) import, and tax-lot points looked up against them agree with the
labels they carry. The full 855,552-point check is `make bench ONLY=nyc_points_agreement`."""

from collections.abc import Iterator

import pandas as pd
import pytest
from django.contrib.gis.geos import Point

from boundaries.models import Layer
from boundaries.selectors import boundaries_containing
from importers.manifest import import_manifest
from tests.conftest import NYC, REPO, SHARED_DATA

LABELS = ["councildist_2023", "communitydist", "policeprct", "schooldist", "nta", "modzcta"]
SAMPLE = 1500


@pytest.fixture(scope="module")
def nyc_layers(django_db_setup, django_db_blocker) -> Iterator[list]:
    with django_db_blocker.unblock():
        reports = import_manifest(REPO / "bench" / "manifests" / "nyc.json", root=SHARED_DATA)
        yield reports
        Layer.objects.filter(slug__in=[r.layer for r in reports]).delete()


@pytest.fixture(scope="module")
def sample_points() -> pd.DataFrame:
    points = pd.read_csv(
        NYC / "points" / "tax_lot_points_2023.csv",
        usecols=["latitude", "longitude", *LABELS],
        dtype=str,
    )
    return points.sample(n=SAMPLE, random_state=311)


@pytest.mark.django_db
def test_all_seven_nyc_layers_import(nyc_layers):
    assert [(r.layer, r.features, r.source_crs, r.status) for r in nyc_layers] == [
        ("borough", 5, "EPSG:2263", "active"),
        ("communitydist", 71, "EPSG:2263", "active"),
        ("councildist_2023", 51, "EPSG:2263", "active"),
        ("policeprct", 77, "EPSG:2263", "active"),
        ("schooldist", 32, "EPSG:2263", "active"),
        ("nta", 262, "EPSG:2263", "active"),
        ("modzcta", 178, "EPSG:2263", "active"),
    ]


def _label(value: str) -> str:
    # CSV labels such as "12.0" and the layer codes "12" name the same area.
    return value[:-2] if value.endswith(".0") else value


@pytest.mark.django_db
def test_tax_lot_points_agree_with_their_labels(nyc_layers, sample_points):
    agree = dict.fromkeys(LABELS, 0)
    for row in sample_points.itertuples(index=False):
        found = boundaries_containing(
            point=Point(float(row.longitude), float(row.latitude), srid=4326)
        )
        codes: dict[str, list[str]] = {}
        for b in found:
            codes.setdefault(b.version.layer.slug, []).append(b.code)
        for label in LABELS:
            if [_label(getattr(row, label))] == codes.get(label):
                agree[label] += 1
    rates = {label: agree[label] / SAMPLE for label in LABELS}
    assert {k: v for k, v in rates.items() if k != "modzcta"} == dict.fromkeys(
        [k for k in LABELS if k != "modzcta"], 1.0
    ), rates
    assert rates["modzcta"] >= 0.975, rates
