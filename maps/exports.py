"""Exports for planners' own tools: CSV (rows as they are), GeoJSON (built by PostGIS) and
GeoPackage (written by GDAL through pyogrio from the GeoJSON, EPSG:4326)."""

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import geopandas as gpd


def csv_text(rows: Iterable[dict], columns: Sequence[str] | None = None) -> str:
    """Rows as CSV with a header; nested values (age buckets, lists) as JSON text."""
    rows = list(rows)
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                json.dumps(value) if isinstance(value, dict | list) else value
                for value in (row.get(c) for c in columns)
            ]
        )
    return out.getvalue()


def geojson_csv(geojson: dict) -> str:
    """The properties of a FeatureCollection as CSV, with a point inside each feature."""
    if not geojson["features"]:
        return csv_text([])
    frame = gpd.GeoDataFrame.from_features(geojson["features"], crs=4326)
    rows = []
    for props, geometry in zip(
        (f["properties"] for f in geojson["features"]), frame.geometry, strict=True
    ):
        point = geometry.representative_point() if geometry is not None else None
        rows.append(
            {
                **props,
                "lon": round(point.x, 6) if point is not None else None,
                "lat": round(point.y, 6) if point is not None else None,
            }
        )
    return csv_text(rows)


def geopackage(geojson: dict, *, layer: str) -> bytes:
    """A FeatureCollection (EPSG:4326) as a GeoPackage file's bytes, one layer."""
    if geojson["features"]:
        frame = gpd.GeoDataFrame.from_features(geojson["features"], crs=4326)
    else:
        frame = gpd.GeoDataFrame({"geometry": []}, geometry="geometry", crs=4326)
    for column in frame.columns:
        if column != "geometry" and frame[column].map(lambda v: isinstance(v, list | dict)).any():
            frame[column] = frame[column].map(json.dumps)
    with tempfile.TemporaryDirectory(prefix="geo311-export-") as folder:
        path = Path(folder) / f"{layer}.gpkg"
        frame.to_file(path, layer=layer, driver="GPKG", engine="pyogrio")
        return path.read_bytes()
