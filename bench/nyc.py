"""The NYC scale data set: the 7 boundary layers of ``bench/manifests/nyc.json`` and the 855,552
labelled tax-lot points, plus the lookup SQL exactly as the selector issues it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from .common import DATA, MANIFESTS, BenchError, data_path, log

MANIFEST = MANIFESTS / "nyc.json"
POINTS_CSV = ("nyc", "points", "tax_lot_points_2023.csv")
# The columns of POINTS_CSV, in file order (checked against the header before a COPY).
POINTS_CSV_COLUMNS = [
    "borough",
    "block",
    "lot",
    "unitsres",
    "latitude",
    "longitude",
    "councildist_2023",
    "schooldist",
    "communitydist",
    "policeprct",
    "nta",
    "modzcta",
    "bbl_population_estimate",
]
# Layers with a label column in the points file (slug == column name). ``borough`` has none
# that matches its codes (the file says BK, the layer Brooklyn), so it is checked separately.
LABELLED = ["councildist_2023", "communitydist", "policeprct", "schooldist", "nta", "modzcta"]
BOROUGH_CODES = {
    "MN": "Manhattan",
    "BX": "The Bronx",
    "BK": "Brooklyn",
    "QN": "Queens",
    "SI": "Staten Island",
}
POINTS_TOTAL = 855_552


def layer_slugs() -> list[str]:
    return [entry["layer"] for entry in json.loads(MANIFEST.read_text())["layers"]]


def manifest_files() -> list:
    """(slug, absolute path) of every manifest entry, checked to exist."""
    out = []
    for entry in json.loads(MANIFEST.read_text())["layers"]:
        out.append((entry["layer"], data_path(entry["file"])))
    return out


def wipe_layers() -> None:
    """Delete the 7 NYC layers (with their versions, boundaries and parts) from the bench
    database, then VACUUM ANALYZE the boundary tables so no dead rows or stale statistics carry
    over to the next run. Other layers in the bench database (other benchmarks' Chicago layers)
    are left alone: no TRUNCATE … CASCADE, which would also empty every table that references
    a layer (routing rules, categories' required layers)."""
    from boundaries.models import Layer

    Layer.objects.filter(slug__in=layer_slugs()).delete()
    analyze_boundaries()


def import_nyc(progress=None, jobs: int | None = None):  # type: ignore[no-untyped-def]
    """``import_manifest`` of the 7 NYC layers; ``jobs`` only when given (and supported)."""
    import inspect

    from importers.manifest import import_manifest

    manifest_files()  # fail early and clearly when a file is missing
    kwargs = {}
    if jobs is not None and "jobs" in inspect.signature(import_manifest).parameters:
        kwargs["jobs"] = jobs
    return import_manifest(MANIFEST, root=DATA, progress=progress, **kwargs)


def active_versions() -> dict[str, int]:
    from boundaries.models import LayerVersion, VersionStatus

    return dict(
        LayerVersion.objects.filter(status=VersionStatus.ACTIVE).values_list("layer__slug", "pk")
    )


def ensure_nyc_layers() -> dict[str, int]:
    """The 7 NYC layers active in the bench database (re-imported when one is missing); slug ->
    id of their active versions. Other layers are left as they are."""
    want = set(layer_slugs())
    have = nyc_versions()
    if set(have) != want:
        log("importing the 7 NYC layers into the bench database")
        wipe_layers()
        started = time.perf_counter()
        import_nyc()
        log(f"imported in {time.perf_counter() - started:.1f} s")
        analyze_boundaries()
        have = nyc_versions()
    if set(have) != want:
        raise BenchError(
            f"after import the active NYC layers are {sorted(have)}, not {sorted(want)}"
        )
    return have


def nyc_versions() -> dict[str, int]:
    """slug -> active version id of the NYC layers present."""
    want = set(layer_slugs())
    return {slug: pk for slug, pk in active_versions().items() if slug in want}


def rebuild_parts(max_vertices: int | None) -> int:
    """Replace the BoundaryParts of the active NYC versions by ST_Subdivide pieces of at most
    ``max_vertices`` vertices (``None``: no parts at all) with ``boundaries.sql.subdivide_version``,
    then VACUUM ANALYZE the boundary tables. Other layers' parts are not touched."""
    from boundaries import sql as boundary_sql
    from boundaries.models import BoundaryPart

    versions = list(nyc_versions().values())
    BoundaryPart.objects.filter(version_id__in=versions).delete()  # one DELETE: no dependents
    count = 0
    if max_vertices is not None:
        for version_id in versions:
            count += boundary_sql.subdivide_version(
                version_id=version_id, max_vertices=max_vertices
            )
    analyze_boundaries()
    return count


def analyze_boundaries() -> None:
    """VACUUM ANALYZE the boundary tables. Autovacuum is off on the bench server (and takes up
    to a minute where it is on): without fresh statistics the planner can take a reloaded
    ``boundaries_boundary`` for 1 row and loop over every boundary, probing the parts' GiST
    index once per boundary (~40 ms a lookup instead of < 1 ms)."""
    from django.db import connection

    from boundaries.models import Boundary, BoundaryPart, Layer, LayerVersion

    with connection.cursor() as cursor:
        for model in (BoundaryPart, Boundary, LayerVersion, Layer):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def parts_count() -> int:
    """Parts of the active NYC versions."""
    from boundaries.models import BoundaryPart

    return BoundaryPart.objects.filter(version_id__in=nyc_versions().values()).count()


# --- points ---------------------------------------------------------------------------------


def load_points():  # type: ignore[no-untyped-def]
    """All tax-lot points as a DataFrame (labels as text)."""
    import pandas as pd

    path = data_path(*POINTS_CSV)
    df = pd.read_csv(
        path,
        dtype={c: str for c in [*LABELLED, "borough"]},
        usecols=["borough", "latitude", "longitude", *LABELLED],
        keep_default_na=False,
    )
    if len(df) != POINTS_TOTAL:
        log(f"warning: {path} has {len(df)} points, not {POINTS_TOTAL}")
    return df


@dataclass(frozen=True)
class SamplePoint:
    lat: float
    lon: float
    labels: dict


def sample_points(n: int, *, seed: int = 311) -> list[SamplePoint]:
    """``n`` tax-lot points drawn without replacement with a fixed seed: the same points for
    every run and every variant."""
    df = load_points()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(df), size=n, replace=False)
    rows = df.iloc[idx]
    return [
        SamplePoint(
            float(r.latitude),
            float(r.longitude),
            {
                **{c: normalise_code(getattr(r, c)) for c in LABELLED},
                "borough": BOROUGH_CODES.get(r.borough, r.borough),
            },
        )
        for r in rows.itertuples(index=False)
    ]


def normalise_code(value: object) -> str:
    """Labels compare as the importer stores codes: text, 12.0 -> "12"."""
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].lstrip("-").isdigit():
        return text[:-2]
    return text


# --- the lookup query -----------------------------------------------------------------------


@dataclass(frozen=True)
class LookupSQL:
    """A lookup query as Django would send it, with the point parameter's position."""

    sql: str
    params: tuple
    point_index: int

    def bind(self, point) -> tuple:  # type: ignore[no-untyped-def]
        params = list(self.params)
        params[self.point_index] = point
        return tuple(params)

    def for_psycopg(self) -> str:
        """Django's ``%s`` placeholders are psycopg's too; only literal ``%`` would need care."""
        return self.sql


def _extract(qs) -> LookupSQL:  # type: ignore[no-untyped-def]
    from django.contrib.gis.db.backends.postgis.adapter import PostGISAdapter

    sql, params = qs.query.sql_with_params()
    where = [i for i, p in enumerate(params) if isinstance(p, PostGISAdapter)]
    if len(where) != 1:
        raise BenchError(f"expected one geometry parameter in the lookup query, found {where}")
    # Enum members (VersionStatus.ACTIVE) become their plain values for psycopg.
    plain = tuple(getattr(p, "value", p) for p in params)
    return LookupSQL(sql=sql, params=plain, point_index=where[0])


def selector_lookup_sql(*, layers: list[str] | None = None) -> LookupSQL:
    """The exact SQL of ``boundaries.selectors.boundaries_containing`` (via the parts)."""
    from django.contrib.gis.geos import Point

    from boundaries.selectors import boundaries_containing

    return _extract(boundaries_containing(point=Point(-73.9, 40.7, srid=4326), layers=layers))


def whole_polygon_lookup_sql() -> LookupSQL:
    """The selector's own queryset (same columns, deferrals, joins and order) with its WHERE
    replaced by ST_Covers on the whole Boundary polygon: the "no ST_Subdivide" baseline."""
    from django.contrib.gis.geos import Point
    from django.db.models.sql.where import WhereNode

    from boundaries.models import VersionStatus
    from boundaries.selectors import boundaries_containing

    point = Point(-73.9, 40.7, srid=4326)
    qs = boundaries_containing(point=point).all()
    qs.query.where = WhereNode()
    return _extract(qs.filter(geom__covers=point, version__status=VersionStatus.ACTIVE))


def ids_only(lookup: LookupSQL) -> LookupSQL:
    """The same query selecting only the boundary id, layer slug and code: what the lookup
    costs without shipping every matching outline (and its JSON) back to the client."""
    sql = lookup.sql
    head, sep, tail = sql.partition(" FROM ")
    if not sep or not head.startswith("SELECT "):
        raise BenchError("unexpected lookup SQL shape")
    slim = (
        'SELECT "boundaries_boundary"."id", "boundaries_layer"."slug", '
        '"boundaries_boundary"."code" FROM ' + tail
    )
    return LookupSQL(sql=slim, params=lookup.params, point_index=lookup.point_index)
