"""Read a boundary file (GeoJSON, Shapefile or zipped Shapefile, GeoPackage, KML), check it,
repair it, and store it as a new version of a layer.

``import_boundary_file`` is what the ``import_boundaries`` command, the admin upload and the
tests call. It either stores the whole file or nothing: every rejected feature is listed with its
number (1-based, in file order) and the reason, and the database is left as it was.
"""

import datetime as dt
import hashlib
import json
import math
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from django.conf import settings
from django.db import transaction
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from boundaries import selectors as boundary_selectors
from boundaries import services as boundary_services
from boundaries.models import Layer, LayerKind, LayerVersion, VersionStatus

Progress = Callable[[str], None]

SINGLE_LAYER = {".geojson", ".json", ".shp"}

SUPPORTED = (
    ".geojson, .json, .shp (with its siblings), .zip (a zipped shapefile), .gpkg, .kml, .kmz"
)


class BoundaryImportError(Exception):
    """The file cannot be imported; ``problems`` lists every reason, one per line."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        text = self.args[0]
        if self.problems:
            shown = self.problems[:50]
            more = len(self.problems) - len(shown)
            text += "\n" + "\n".join(f"  - {p}" for p in shown)
            if more:
                text += f"\n  … and {more} more"
        return text


@dataclass
class ImportReport:
    source: str
    layer: str
    source_layer: str = ""
    source_crs: str = ""
    code_field: str = ""
    name_field: str = ""
    features: int = 0
    vertices: int = 0
    repaired: list[str] = field(default_factory=list)
    version: int | None = None
    status: str = ""
    dry_run: bool = False
    unchanged: bool = False
    compared_with: int | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = []
        if self.unchanged:
            lines.append(
                f"{self.source} is already version {self.version} of layer '{self.layer}' "
                "(same checksum); nothing imported."
            )
            return "\n".join(lines)
        verb = "Would import" if self.dry_run else "Imported"
        where = f"layer '{self.layer}'"
        if not self.dry_run:
            where += f" as version {self.version} ({self.status})"
        lines.append(
            f"{verb} {self.features} boundaries ({self.vertices:,} vertices) from {self.source} "
            f"[{self.source_crs}] into {where} in {self.seconds:.1f} s."
        )
        lines.append(
            f"Codes from '{self.code_field}', names from '{self.name_field or self.code_field}'."
        )
        lines += [f"Note: {n}" for n in self.notes]
        if self.repaired:
            lines.append(f"Repaired {len(self.repaired)} invalid polygon(s):")
            lines += [f"  - {r}" for r in self.repaired]
        else:
            lines.append("Repaired 0 polygons (all valid).")
        if self.compared_with is not None:
            lines.append(
                f"Against active version {self.compared_with}: {len(self.added)} added, "
                f"{len(self.removed)} removed, {len(self.changed)} changed."
            )
            lines += [f"  + {c}" for c in self.added]
            lines += [f"  - {c}" for c in self.removed]
            lines += [f"  ~ {c['code']}: area {c['area_change_pct']:+.1f}%" for c in self.changed]
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class SourceFile:
    """A file opened for reading: the GDAL path, its layer, and the checksum of what was sent."""

    path: Path
    gdal_path: str
    layer: str | None
    checksum: str


def _checksum(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def open_source(path: Path, *, source_layer: str | None = None) -> SourceFile:
    """Check that ``path`` is a readable boundary file and choose its layer."""
    if not path.exists():
        raise BoundaryImportError(f"{path}: no such file")
    if path.is_dir():
        raise BoundaryImportError(
            f"{path} is a folder; give the .shp, .zip, .gpkg or .geojson file"
        )
    if path.stat().st_size == 0:
        raise BoundaryImportError(f"{path} is empty (0 bytes)")
    suffix = path.suffix.lower()
    files = [path]
    gdal_path = str(path)
    if suffix == ".zip":
        if not zipfile.is_zipfile(path):
            raise BoundaryImportError(
                f"{path} is not a readable zip archive (corrupt or truncated?)"
            )
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise BoundaryImportError(f"{path} is a corrupt zip archive: {exc}") from exc
        if bad is not None:
            raise BoundaryImportError(f"{path} is a corrupt zip archive: {bad} fails its CRC check")
        if not any(
            n.lower().endswith((".shp", ".gpkg", ".geojson", ".json", ".kml")) for n in names
        ):
            raise BoundaryImportError(
                f"{path} holds no boundary file (no .shp, .gpkg, .geojson or .kml inside)"
            )
        gdal_path = f"/vsizip/{path}"
    elif suffix == ".shp":
        siblings = sorted(p for p in path.parent.glob(path.stem + ".*") if p != path)
        files += siblings
        if not any(p.suffix.lower() == ".dbf" for p in siblings):
            raise BoundaryImportError(
                f"{path} has no .dbf beside it; send all the shapefile's files"
            )
    elif suffix not in {".geojson", ".json", ".gpkg", ".kml", ".kmz"}:
        raise BoundaryImportError(f"{path}: unsupported file type '{suffix}'; use {SUPPORTED}")

    if suffix in SINGLE_LAYER and not source_layer:
        # These formats hold one layer; listing it would parse a GeoJSON file twice.
        return SourceFile(path=path, gdal_path=gdal_path, layer=None, checksum=_checksum(files))
    try:
        layers = pyogrio.list_layers(gdal_path)
    except (DataSourceError, DataLayerError) as exc:
        raise BoundaryImportError(f"{path} cannot be read as a boundary file: {exc}") from exc
    names = [str(name) for name, _ in layers]
    if not names:
        raise BoundaryImportError(f"{path} contains no layers")
    if source_layer:
        if source_layer not in names:
            raise BoundaryImportError(
                f"{path} has no layer '{source_layer}'; its layers are: {', '.join(names)}"
            )
        chosen: str | None = source_layer
    elif len(names) > 1:
        raise BoundaryImportError(
            f"{path} has {len(names)} layers ({', '.join(names)}); "
            "choose one with --source-layer NAME"
        )
    else:
        chosen = names[0]
    return SourceFile(path=path, gdal_path=gdal_path, layer=chosen, checksum=_checksum(files))


def _guess_field(columns: list[str], candidates: list[str]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    for candidate in candidates:
        if candidate.lower() in lowered:
            return lowered[candidate.lower()]
    return None


def _as_code(value: Any) -> str:
    """Codes are text: 12.0 from a float column becomes "12", not "12.0"."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return ""
        if float(value).is_integer():
            return str(int(value))
    return str(value).strip()


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


@dataclass
class CleanLayer:
    """Checked, repaired polygons in EPSG:4326, ready to store."""

    codes: list[str]
    names: list[str]
    attributes: list[str]
    geoms: np.ndarray  # shapely MultiPolygons, EPSG:4326
    source_crs: str
    code_field: str
    name_field: str
    vertices: int
    repaired: list[str]
    notes: list[str]


def read_clean_layer(
    source: SourceFile,
    *,
    layer_slug: str,
    code_field: str | None = None,
    name_field: str | None = None,
    srid: int | None = None,
    exclude_codes: frozenset[str] = frozenset(),
    merge_duplicates: bool = False,
    progress: Progress | None = None,
) -> CleanLayer:
    """Read, check and repair every feature; raise naming every problem, or return clean data.

    ``srid`` names the CRS of a file that has none (a shapefile without .prj) and overrides a
    wrong one. Features whose code is in ``exclude_codes`` are left out (e.g. Chicago's "OUT"
    ward); with ``merge_duplicates`` features sharing a code become one boundary. Output
    geometries are MultiPolygons in EPSG:4326.
    """
    say = progress or (lambda _msg: None)
    try:
        meta, _fids, wkb, field_data = pyogrio.raw.read(source.gdal_path, layer=source.layer)
    except (DataSourceError, DataLayerError) as exc:
        raise BoundaryImportError(f"{source.path} cannot be read: {exc}") from exc
    columns = [str(c) for c in meta["fields"]]
    count = len(wkb)
    of_layer = f" (layer {source.layer})" if source.layer else ""
    say(f"read {count} features from {source.path.name}{of_layer}")
    if count == 0:
        raise BoundaryImportError(f"{source.path} has no features")
    crs = _source_crs(source, meta.get("crs"), srid)

    code_field = code_field or _guess_field(
        columns, [layer_slug, layer_slug.rstrip("s"), "code", "id"]
    )
    if not code_field:
        raise BoundaryImportError(
            f"cannot tell which field holds the boundary codes; pass --code-field "
            f"(fields: {', '.join(columns)})"
        )
    if code_field not in columns:
        raise BoundaryImportError(
            f"no field '{code_field}' in {source.path.name}; fields: {', '.join(columns)}"
        )
    if name_field and name_field not in columns:
        raise BoundaryImportError(
            f"no field '{name_field}' in {source.path.name}; fields: {', '.join(columns)}"
        )
    name_field = name_field or _guess_field(columns, ["name", f"{layer_slug}_name"]) or ""

    # Attribute columns as Python lists once (not per row through pandas).
    values = {c: list(field_data[i]) for i, c in enumerate(columns)}
    geoms = shapely.from_wkb(wkb)

    codes = [_as_code(v) for v in values[code_field]]
    names = [_as_code(v) for v in values[name_field]] if name_field else list(codes)
    keep = [i for i in range(count) if codes[i] not in exclude_codes]
    notes = []
    if len(keep) < count:
        notes.append(
            f"excluded {count - len(keep)} feature(s) with code(s) "
            f"{', '.join(sorted(set(exclude_codes) & set(codes)))}"
        )

    problems: list[str] = []
    groups: dict[str, list[int]] = {}
    type_ids = shapely.get_type_id(geoms)
    polygonal = np.isin(type_ids, [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON])
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    for i in keep:
        n = i + 1
        if empty[i]:
            problems.append(f"feature {n}: empty geometry")
        elif not polygonal[i]:
            problems.append(f"feature {n}: is a {geoms[i].geom_type}, not a polygon")
        if not codes[i]:
            problems.append(f"feature {n}: empty code in field '{code_field}'")
        elif codes[i] in groups and not merge_duplicates:
            problems.append(
                f"feature {n}: code '{codes[i]}' is already used by feature "
                f"{groups[codes[i]][0] + 1}"
            )
        groups.setdefault(codes[i], []).append(i)
    if problems:
        hint = ""
        if any("already used" in p for p in problems):
            hint = (
                " (pass --merge-duplicates to join features that share a code into one "
                "boundary, or --exclude CODE to leave a code out)"
            )
        raise BoundaryImportError(
            f"{source.path.name}: {len(problems)} problem(s); nothing was imported{hint}", problems
        )

    labels = [f"feature {i + 1} (code {codes[i]})" for i in keep]
    geoms = geoms[keep]
    repaired = _repair_invalid(geoms, labels=labels, when="")
    if repaired:
        say(f"repaired {len(repaired)} invalid polygon(s)")
    geoms = _to_wgs84(geoms, crs, srid)
    # Reprojection can make a valid ring touch itself (a vertex moves by micro-degrees); such
    # polygons are repaired again and named, so ST_Covers never meets an invalid polygon.
    repaired += _repair_invalid(geoms, labels=labels, when=" after reprojection")
    by_index = dict(zip(keep, geoms, strict=True))
    out_geoms, out_codes, out_names, attributes = [], [], [], []
    for code, members in groups.items():
        first = members[0]
        if len(members) > 1:
            merged = _polygons_only(shapely.union_all([by_index[i] for i in members]))
            notes.append(
                f"merged features {', '.join(str(i + 1) for i in members)} into code {code}"
            )
        else:
            merged = by_index[first]
        out_geoms.append(_as_multipolygon(merged))
        out_codes.append(code)
        out_names.append(names[first])
        attributes.append(
            json.dumps({c: _json_safe(values[c][first]) for c in columns}, default=str)
        )
    geoms = np.asarray(out_geoms, dtype=object)
    return CleanLayer(
        codes=out_codes,
        names=out_names,
        attributes=attributes,
        geoms=geoms,
        source_crs=crs.to_string(),
        code_field=code_field,
        name_field=name_field,
        vertices=int(shapely.get_num_coordinates(geoms).sum()),
        repaired=repaired,
        notes=notes,
    )


def _source_crs(source: SourceFile, declared: str | None, srid: int | None) -> CRS:
    if srid is not None:
        try:
            return CRS.from_epsg(srid)
        except CRSError as exc:
            raise BoundaryImportError(f"--srid {srid} is not a known EPSG code") from exc
    if not declared:
        raise BoundaryImportError(
            f"{source.path.name} has no CRS (a shapefile without its .prj?); "
            "pass --srid with the EPSG code it was drawn in (e.g. 3435 for Illinois East feet, "
            "2263 for New York Long Island feet, 4326 for longitude/latitude)"
        )
    try:
        return CRS.from_user_input(declared)
    except CRSError as exc:
        raise BoundaryImportError(
            f"{source.path.name} declares a CRS that PROJ does not know ({declared}); pass --srid"
        ) from exc


def _to_wgs84(geoms: np.ndarray, crs: CRS, srid: int | None) -> np.ndarray:
    wgs84 = CRS.from_epsg(4326)
    if not crs.equals(wgs84, ignore_axis_order=True):
        transformer = Transformer.from_crs(crs, wgs84, always_xy=True)
        geoms = shapely.transform(
            geoms, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    finite = all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax))
    if not finite or xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
        how = f"--srid {srid}" if srid is not None else f"its declared CRS ({crs.to_string()})"
        raise BoundaryImportError(
            f"read with {how}, the data lies outside valid longitude/latitude "
            f"(x {xmin:.6g}…{xmax:.6g}, y {ymin:.6g}…{ymax:.6g}): the CRS is wrong. "
            "Pass --srid with the EPSG code the file was really drawn in"
        )
    return geoms


def _repair_invalid(geoms: np.ndarray, *, labels: list[str], when: str) -> list[str]:
    """Repair invalid polygons in place (GEOS MakeValid, "structure" method, polygonal part
    kept); return one line per repair naming the feature and what was wrong."""
    lines = []
    for j in np.flatnonzero(~shapely.is_valid(geoms)):
        reason = shapely.is_valid_reason(geoms[j])
        fixed = _polygons_only(
            shapely.make_valid(geoms[j], method="structure", keep_collapsed=False)
        )
        if fixed is None:
            raise BoundaryImportError(
                f"{labels[j]} is invalid ({reason}) and has no area left after repair; "
                "nothing was imported"
            )
        geoms[j] = fixed
        lines.append(f"{labels[j]}: {reason}{when}")
    return lines


def _polygons_only(geom: shapely.Geometry) -> shapely.Geometry | None:
    polys = [
        g
        for g in shapely.get_parts(geom)
        if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty
    ]
    parts = [p for g in polys for p in shapely.get_parts(g)]
    return shapely.MultiPolygon(parts) if parts else None


def _as_multipolygon(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom


def import_boundary_file(
    path: Path | str,
    *,
    layer: str,
    code_field: str | None = None,
    name_field: str | None = None,
    source_layer: str | None = None,
    srid: int | None = None,
    exclude_codes: frozenset[str] = frozenset(),
    merge_duplicates: bool = False,
    effective_from: dt.date | None = None,
    activate: bool = False,
    dry_run: bool = False,
    force: bool = False,
    layer_name: str = "",
    layer_kind: str = LayerKind.OTHER,
    source_name: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one boundary file as a new version of ``layer`` (created if new).

    The first version of a new layer is activated at once; later versions are staged unless
    ``activate``. ``dry_run`` does all the work, reports what would change against the active
    version, and rolls everything back. Re-importing a file whose checksum matches an existing
    version of the layer does nothing unless ``force``.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    path = Path(path)
    source = open_source(path, source_layer=source_layer)
    report = ImportReport(
        source=source_name or path.name,
        layer=layer,
        source_layer=source.layer or "",
        dry_run=dry_run,
    )

    existing = LayerVersion.objects.filter(layer__slug=layer, checksum=source.checksum)
    if source_layer:
        existing = existing.filter(source_layer=source_layer)
    same = existing.order_by("-number").first()
    if same is not None and not force:
        report.unchanged = True
        report.version = same.number
        report.status = same.status
        if activate and same.status != VersionStatus.ACTIVE and not dry_run:
            boundary_services.layer_version_activate(version=same)
            report.status = VersionStatus.ACTIVE
        return report

    clean = read_clean_layer(
        source,
        layer_slug=layer,
        code_field=code_field,
        name_field=name_field,
        srid=srid,
        exclude_codes=exclude_codes,
        merge_duplicates=merge_duplicates,
        progress=say,
    )
    report.source_crs = clean.source_crs
    report.code_field = clean.code_field
    report.name_field = clean.name_field
    report.features = len(clean.codes)
    report.vertices = clean.vertices
    report.repaired = clean.repaired
    report.notes = clean.notes

    rows = (
        boundary_services.BoundaryRow(code, name, attrs, ewkb)
        for code, name, attrs, ewkb in zip(
            clean.codes,
            clean.names,
            clean.attributes,
            _ewkb_4326(clean.geoms),
            strict=True,
        )
    )
    with transaction.atomic():
        target = Layer.objects.filter(slug=layer).first()
        new_layer = target is None
        if target is None:
            target = boundary_services.layer_get_or_create(
                slug=layer, name=layer_name, kind=layer_kind
            )
        say(f"writing {report.features} boundaries and their lookup pieces")
        version = boundary_services.layer_version_create(
            layer=target,
            rows=rows,
            source_name=report.source,
            source_layer=source.layer or "",
            checksum=source.checksum,
            source_crs=clean.source_crs,
            code_field=clean.code_field,
            name_field=clean.name_field,
            effective_from=effective_from,
            vertex_count=clean.vertices,
            report={},
        )
        active = boundary_selectors.layer_active_version(layer=target)
        if active is not None:
            report.compared_with = active.number
            for change in boundary_selectors.version_diff(
                new=version, old=active, tolerance_m2=settings.GEO311_TOPOLOGY_TOLERANCE_M2
            ):
                if change.change == "added":
                    report.added.append(change.code)
                elif change.change == "removed":
                    report.removed.append(change.code)
                else:
                    report.changed.append(
                        {"code": change.code, "area_change_pct": change.area_change_pct}
                    )
            if report.features and not _overlaps_extent(version, active):
                report.warnings.append(
                    f"the new version does not overlap active version {active.number} at all: "
                    "is the CRS (--srid) right?"
                )
        if new_layer or activate:
            version = boundary_services.layer_version_activate(version=version)
        report.version = version.number
        report.status = version.status
        report.seconds = time.perf_counter() - started
        version.report = report.as_dict()
        version.save(update_fields=["report"])
        if dry_run:
            transaction.set_rollback(True)
    report.seconds = time.perf_counter() - started
    return report


def _ewkb_4326(geoms: np.ndarray) -> list[bytes]:
    with_srid = shapely.set_srid(geoms, 4326)
    return list(shapely.to_wkb(with_srid, include_srid=True))


def _overlaps_extent(new: LayerVersion, old: LayerVersion) -> bool:
    a = boundary_selectors.version_extent(version=new)
    b = boundary_selectors.version_extent(version=old)
    if not a or not b:
        return True
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])
