"""Read denominator points (residents, housing units…) from a CSV with latitude, longitude and
a value column, or from any GDAL point file with a value field, for rates per cell.

``read_denominator_points`` is what the ``load_denominator`` command and the tests call; rows
without a point or with a value that is not a number ≥ 0 are counted and left out, with the
first few row numbers (a CSV's header is row 1).
"""

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyogrio
import shapely
from pyproj import CRS, Transformer


class DenominatorFileError(Exception):
    """The file cannot be read as denominator points; the message says why."""


@dataclass
class DenominatorPoints:
    points: list[tuple[float, float, float]] = field(default_factory=list)  # lon, lat, value
    rejected: dict[int, str] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(v for _, _, v in self.points)


def _number(text: object) -> float | None:
    try:
        value = float(str(text))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_denominator_points(
    path: Path, *, value_field: str, lat_field: str = "latitude", lon_field: str = "longitude"
) -> DenominatorPoints:
    if not path.exists():
        raise DenominatorFileError(f"no such file: {path}")
    if path.suffix.lower() in (".csv", ".txt"):
        rows = _csv_rows(path, value_field=value_field, lat_field=lat_field, lon_field=lon_field)
    else:
        rows = _gdal_rows(path, value_field=value_field)
    out = DenominatorPoints()
    for number, lon, lat, value in rows:
        if lon is None or lat is None or not (-180 <= lon <= 180 and -90 <= lat <= 90):
            out.rejected[number] = "no valid longitude/latitude"
        elif value is None or value < 0:
            out.rejected[number] = f"{value_field} is not a number ≥ 0"
        else:
            out.points.append((lon, lat, value))
    return out


def _csv_rows(
    path: Path, *, value_field: str, lat_field: str, lon_field: str
) -> Iterator[tuple[int, float | None, float | None, float | None]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [
            f for f in (value_field, lat_field, lon_field) if f not in (reader.fieldnames or [])
        ]
        if missing:
            raise DenominatorFileError(
                f"{path.name} has no column {', '.join(missing)} (columns: "
                f"{', '.join(reader.fieldnames or [])})"
            )
        for number, row in enumerate(reader, start=2):
            yield (
                number,
                _number(row[lon_field]),
                _number(row[lat_field]),
                _number(row[value_field]),
            )


def _gdal_rows(
    path: Path, *, value_field: str
) -> Iterator[tuple[int, float | None, float | None, float | None]]:
    try:
        meta, _, geometry, columns = pyogrio.raw.read(path, columns=[value_field])
    except (pyogrio.errors.DataSourceError, pyogrio.errors.FieldError) as exc:
        raise DenominatorFileError(f"cannot read {path.name}: {exc}") from exc
    if not meta.get("crs"):
        raise DenominatorFileError(f"{path.name} has no CRS")
    points = shapely.from_wkb(geometry)
    xy = shapely.get_coordinates(points)
    transformer = Transformer.from_crs(CRS.from_user_input(meta["crs"]), 4326, always_xy=True)
    lons, lats = transformer.transform(xy[:, 0], xy[:, 1])
    for number, (lon, lat, value) in enumerate(zip(lons, lats, columns[0], strict=True), 1):
        yield number, float(lon), float(lat), _number(value)
