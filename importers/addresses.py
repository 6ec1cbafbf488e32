"""Read a city's address points (CSV, or any GDAL point file) and store them for address lookup.

``import_address_file`` is what the ``import_addresses`` command, ``load_demo`` and the tests
call. A file is one source: loading it again does nothing unless ``replace``, which swaps the old
points for the new in the same transaction. Every rejected row is reported with its number (in a
CSV the header is row 1, so the first address is row 2; in other files, the feature number) and
the reason; the good rows are stored in one COPY.
"""

import csv
import gzip
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from django.db import transaction
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from geo311 import sql
from geo311.addresses import normalize_address
from geo311.models import AddressPoint

Progress = Callable[[str], None]

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv")


class AddressImportError(Exception):
    """The file cannot be imported at all (missing, unreadable, wrong fields); nothing written."""


@dataclass(frozen=True)
class Reject:
    row: int
    reason: str


@dataclass
class AddressReport:
    source: str
    rows: int = 0
    imported: int = 0
    replaced: int = 0
    rejected: list[Reject] = field(default_factory=list)
    dry_run: bool = False
    unchanged: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        if self.unchanged:
            return (
                f"{self.source} is already loaded ({self.imported} address points); nothing "
                "imported (pass --replace to load it again)."
            )
        verb = "Would import" if self.dry_run else "Imported"
        lines = [
            f"{verb} {self.imported} of {self.rows} address points from {self.source}"
            f"{f' (replacing {self.replaced})' if self.replaced else ''}; "
            f"rejected {len(self.rejected)} in {self.seconds:.1f} s."
        ]
        shown = self.rejected[:50]
        lines += [f"  row {r.row}: {r.reason}" for r in shown]
        if len(self.rejected) > len(shown):
            lines.append(f"  … and {len(self.rejected) - len(shown)} more")
        return "\n".join(lines)


@dataclass
class _Table:
    columns: list[str]
    values: dict[str, list[str]]
    first_row: int  # number of the first data row in the file
    xy: tuple[np.ndarray, np.ndarray] | None = None  # point geometry of a GDAL file
    crs: str | None = None


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read_csv(path: Path) -> _Table:
    delimiter = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                raise AddressImportError(f"{path} is empty")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AddressImportError(f"{path} cannot be read as UTF-8 CSV: {exc}") from exc
    width = len(header)
    padded = [r + [""] * (width - len(r)) if len(r) < width else r for r in rows]
    columns = [c.strip() for c in header]
    values = {c: [r[i].strip() for r in padded] for i, c in enumerate(columns)}
    return _Table(columns=columns, values=values, first_row=2)


def _read_gdal(path: Path) -> _Table:
    try:
        meta, _fids, wkb, field_data = pyogrio.raw.read(str(path))
    except (DataSourceError, DataLayerError) as exc:
        raise AddressImportError(f"{path} cannot be read: {exc}") from exc
    columns = [str(c) for c in meta["fields"]]
    values = {
        c: ["" if v is None else str(v).strip() for v in field_data[i]]
        for i, c in enumerate(columns)
    }
    xy = None
    if wkb is not None:
        geoms = shapely.from_wkb(wkb)
        points = shapely.get_type_id(geoms) == shapely.GeometryType.POINT
        xs = np.where(points, shapely.get_x(geoms), np.nan)
        ys = np.where(points, shapely.get_y(geoms), np.nan)
        xy = (xs, ys)
    return _Table(columns=columns, values=values, first_row=1, xy=xy, crs=meta.get("crs"))


def _guess(columns: list[str], given: str | None, candidates: list[str], what: str) -> str | None:
    if given:
        if given not in columns:
            raise AddressImportError(f"no field '{given}' for {what}; fields: {', '.join(columns)}")
        return given
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _floats(texts: list[str]) -> np.ndarray:
    out = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        if text:
            try:
                out[i] = float(text)
            except ValueError:
                out[i] = np.inf  # present but not a number: told apart from missing below
    return out


def _transformer(srid: int) -> Transformer:
    try:
        crs = CRS.from_epsg(srid)
    except CRSError as exc:
        raise AddressImportError(f"--srid {srid} is not a known EPSG code") from exc
    return Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)


def import_address_file(
    path: Path | str,
    *,
    address_field: str | None = None,
    id_field: str | None = None,
    zip_field: str | None = None,
    lat_field: str | None = None,
    lon_field: str | None = None,
    x_field: str | None = None,
    y_field: str | None = None,
    srid: int | None = None,
    source_name: str | None = None,
    replace: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> AddressReport:
    """Load the address points of one file (points stored in EPSG:4326).

    Coordinates come from ``lat_field``/``lon_field`` (degrees), from ``x_field``/``y_field`` in
    EPSG ``srid``, or from the file's point geometry; fields not named are guessed from common
    names (address, zip, latitude, longitude...).
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise AddressImportError(f"{path}: no such file")
    report = AddressReport(source=source_name or path.name, dry_run=dry_run)
    already = AddressPoint.objects.filter(source=report.source).count()
    if already and not replace:
        report.unchanged = True
        report.imported = already
        return report

    table = _read_csv(path) if path.name.lower().endswith(CSV_SUFFIXES) else _read_gdal(path)
    cols = table.columns
    n = len(next(iter(table.values.values()), []))
    report.rows = n
    say(f"read {n} rows from {path.name}")
    address_col = _guess(
        cols, address_field, ["address", "street_address", "full_address"], "--address-field"
    )
    if address_col is None:
        raise AddressImportError(
            f"cannot tell which field holds the address; pass --address-field "
            f"(fields: {', '.join(cols)})"
        )
    id_col = _guess(cols, id_field, ["address_id"], "--id-field")
    zip_col = _guess(cols, zip_field, ["zip", "zipcode", "zip_code", "postal_code"], "--zip-field")

    lons, lats = _coordinates(table, lat_field, lon_field, x_field, y_field, srid)
    addresses = table.values[address_col]
    ids = table.values[id_col] if id_col else [""] * n
    zips = [_zip(z) for z in table.values[zip_col]] if zip_col else [""] * n

    rows: list[tuple[str, str, str, str, str, str]] = []
    points = shapely.points(np.column_stack([lons, lats]))
    ewkb = shapely.to_wkb(shapely.set_srid(points, 4326), hex=True, include_srid=True)
    for i in range(n):
        row = table.first_row + i
        reason = _problem(addresses[i], lons[i], lats[i])
        normalized = normalize_address(addresses[i]) if reason is None else ""
        if reason is None and not normalized:
            reason = f"address '{addresses[i]}' has no words left after normalising"
        if reason is not None:
            report.rejected.append(Reject(row, reason))
            continue
        rows.append((ids[i], addresses[i], normalized, zips[i], str(ewkb[i]), report.source))

    say(f"writing {len(rows)} address points")
    with transaction.atomic():
        if replace:
            report.replaced, _ = AddressPoint.objects.filter(source=report.source).delete()
        report.imported = sql.copy_address_points(rows=iter(rows))
        if dry_run:
            transaction.set_rollback(True)
    report.seconds = time.perf_counter() - started
    return report


def _zip(text: str) -> str:
    """ZIP codes read as numbers elsewhere come back as "60614.0"."""
    return text[:-2] if text.endswith(".0") else text


def _problem(address: str, lon: float, lat: float) -> str | None:
    if not address:
        return "no address"
    if math.isnan(lon) or math.isnan(lat):
        return "no coordinates"
    if math.isinf(lon) or math.isinf(lat):
        return "coordinates are not numbers"
    if abs(lon) > 180 or abs(lat) > 90:
        return f"coordinates out of range (lon {lon:.6g}, lat {lat:.6g}): wrong --srid?"
    return None


def _coordinates(
    table: _Table,
    lat_field: str | None,
    lon_field: str | None,
    x_field: str | None,
    y_field: str | None,
    srid: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes (EPSG:4326) of every row: NaN where missing, inf if not a number."""
    cols = table.columns
    if x_field or y_field:
        if not (x_field and y_field and srid):
            raise AddressImportError("--x-field and --y-field need each other and --srid")
        x_col = _guess(cols, x_field, [], "--x-field") or x_field
        y_col = _guess(cols, y_field, [], "--y-field") or y_field
        xs, ys = _floats(table.values[x_col]), _floats(table.values[y_col])
        return _to_wgs84(xs, ys, srid)
    lat_col = _guess(cols, lat_field, ["lat", "latitude"], "--lat-field")
    lon_col = _guess(cols, lon_field, ["lon", "long", "longitude", "lng"], "--lon-field")
    if lat_col and lon_col:
        return _floats(table.values[lon_col]), _floats(table.values[lat_col])
    if table.xy is not None:
        xs, ys = table.xy
        if srid is None and not table.crs:
            raise AddressImportError("the file has no CRS; pass --srid (e.g. 3435 or 4326)")
        if srid is not None:
            return _to_wgs84(xs, ys, srid)
        crs = CRS.from_user_input(table.crs)
        if crs.equals(CRS.from_epsg(4326), ignore_axis_order=True):
            return xs, ys
        epsg = crs.to_epsg()
        if epsg is None:
            raise AddressImportError(f"the file's CRS ({table.crs}) has no EPSG code; pass --srid")
        return _to_wgs84(xs, ys, epsg)
    raise AddressImportError(
        "cannot tell where the coordinates are; pass --lat-field and --lon-field, or --x-field, "
        f"--y-field and --srid (fields: {', '.join(cols)})"
    )


def _to_wgs84(xs: np.ndarray, ys: np.ndarray, srid: int) -> tuple[np.ndarray, np.ndarray]:
    usable = np.isfinite(xs) & np.isfinite(ys)
    lons, lats = xs.copy(), ys.copy()
    if usable.any():
        tx, ty = _transformer(srid).transform(xs[usable], ys[usable])
        lons[usable], lats[usable] = tx, ty
    return lons, lats
