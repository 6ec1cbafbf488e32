"""Planner reports: one HTML file with folium maps (hot and cold spots, clusters, density,
emerging patterns, the equity choropleth) and matplotlib charts (monthly trend, categories,
areas), that opens without a network.

folium's pages load Leaflet, jQuery and Bootstrap from CDNs; these maps use only Leaflet, and
the report carries it inline (``data:`` URIs of our own static copy, its images inlined in its
CSS), so a saved report opens offline and shows the same thing in ten years. The optional
OpenStreetMap base layer is the one thing that needs the network; it is off by default and the
boundary outlines give the maps their context without it.
"""

import base64
import html
import io
import json
import re
from collections.abc import Sequence
from typing import Any

import folium
import matplotlib
import matplotlib.image
import numpy as np
from django.conf import settings
from django.contrib.gis.db.models import Extent
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.utils import timezone
from matplotlib.figure import Figure
from pyproj import Transformer
from scipy.ndimage import map_coordinates

from boundaries.models import LayerVersion, VersionStatus

from . import selectors
from .filters import RequestFilter
from .models import AnalysisRun

# ArcGIS's hot spot colours, from cold 99% to hot 99%.
BIN_COLOURS = {
    -3: "#4575b5",
    -2: "#849eba",
    -1: "#c0ccbe",
    0: "#f2f2ee",
    1: "#fab984",
    2: "#ed7551",
    3: "#d62f27",
}
BIN_LABELS = {
    -3: "Cold spot, 99% confidence",
    -2: "Cold spot, 95% confidence",
    -1: "Cold spot, 90% confidence",
    0: "Not significant",
    1: "Hot spot, 90% confidence",
    2: "Hot spot, 95% confidence",
    3: "Hot spot, 99% confidence",
}
PATTERN_COLOURS = {
    "new": "#fdd0a2",
    "consecutive": "#fdae6b",
    "intensifying": "#a50f15",
    "persistent": "#de2d26",
    "diminishing": "#fb6a4a",
    "sporadic": "#fcbba1",
    "oscillating": "#9e9ac8",
    "historical": "#bdbdbd",
}
# Clusters drawn on the map (largest first); the table lists the same.
MAP_CLUSTERS = 300
COORDINATE_DIGITS = 5  # about a metre


# --- Leaflet, inline ---------------------------------------------------------------------------


def _static_bytes(path: str) -> bytes:
    found = finders.find(path)
    if found:
        with open(found if isinstance(found, str) else found[0], "rb") as fh:
            return fh.read()
    with staticfiles_storage.open(path) as fh:
        return fh.read()


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def leaflet_assets() -> tuple[str, str]:
    """(script URI, stylesheet URI) of our Leaflet as data: URIs, the stylesheet's images
    inlined too."""
    script = _data_uri("text/javascript", _static_bytes("vendor/leaflet/leaflet.js"))
    css = _static_bytes("vendor/leaflet/leaflet.css").decode()

    def inline(match: re.Match) -> str:
        name = match.group(1)
        return f"url({_data_uri('image/png', _static_bytes('vendor/leaflet/' + name))})"

    css = re.sub(r"url\((images/[\w.-]+\.png)\)", inline, css)
    return script, _data_uri("text/css", css.encode())


def offline_map(*, bounds: Sequence[float] | None, height: str = "560px") -> folium.Map:
    """A folium map that loads nothing itself (the report carries Leaflet once, inline),
    fitted to (west, south, east, north), with an OpenStreetMap layer that is off (it needs
    the network)."""
    fmap = folium.Map(tiles=None, width="100%", height=height, control_scale=True)
    fmap.default_js = []
    fmap.default_css = []
    folium.TileLayer(
        "OpenStreetMap", name="OpenStreetMap (needs the network)", overlay=True, show=False
    ).add_to(fmap)
    if bounds:
        west, south, east, north = bounds
        fmap.fit_bounds([[south, west], [north, east]])
    return fmap


def _rounded(geojson: Any) -> Any:
    """GeoJSON with coordinates rounded to about a metre (smaller files)."""
    if isinstance(geojson, list):
        if geojson and isinstance(geojson[0], float):
            return [round(c, COORDINATE_DIGITS) for c in geojson]
        return [_rounded(g) for g in geojson]
    if isinstance(geojson, dict):
        return {k: _rounded(v) if k in ("coordinates", "features", "geometry") else v
                for k, v in geojson.items()}  # fmt: skip
    return geojson


# --- layers ------------------------------------------------------------------------------------


def add_hotspot_layer(fmap: folium.Map, *, run: AnalysisRun, name: str) -> None:
    cells = json.loads(selectors.hotspot_cells_geojson(run=run, significant_only=True))
    folium.GeoJson(
        _rounded(cells),
        name=name,
        style_function=lambda f: {
            "fillColor": BIN_COLOURS[f["properties"]["gi_bin"]],
            "color": BIN_COLOURS[f["properties"]["gi_bin"]],
            "weight": 0.5,
            "fillOpacity": 0.7,
        },
        tooltip=folium.GeoJsonTooltip(
            fields=["class", "count", "z", "q"],
            aliases=["class", "requests", "Gi* z", "p (FDR)"],
        ),
    ).add_to(fmap)


def add_emerging_layer(fmap: folium.Map, *, run: AnalysisRun) -> None:
    cells = json.loads(selectors.hotspot_cells_geojson(run=run, significant_only=True))

    def style(feature: dict) -> dict:
        pattern, _, side = feature["properties"]["class"].rpartition("_")
        colour = PATTERN_COLOURS.get(pattern, "#999999")
        if side == "cold":
            colour = "#3182bd"
        return {"fillColor": colour, "color": "#555555", "weight": 0.4, "fillOpacity": 0.75}

    folium.GeoJson(
        _rounded(cells),
        name="Emerging hot and cold spots",
        show=False,
        style_function=style,
        tooltip=folium.GeoJsonTooltip(
            fields=["class", "count", "trend_z", "trend_p"],
            aliases=["pattern", "requests", "trend z (Mann-Kendall)", "trend p"],
        ),
    ).add_to(fmap)


def add_cluster_layer(fmap: folium.Map, *, run: AnalysisRun) -> None:
    clusters = json.loads(selectors.clusters_geojson(run=run))
    features = clusters["features"][:MAP_CLUSTERS]
    for feature in features:
        props = feature["properties"]
        props["span"] = f"{props['first_at'][:10]} to {props['last_at'][:10]}"
        props.pop("request_ids", None)
    folium.GeoJson(
        _rounded({"type": "FeatureCollection", "features": features}),
        name=f"Clusters (DBSCAN, the {len(features)} largest)",
        style_function=lambda f: {"color": "#54278f", "weight": 1.5, "fillOpacity": 0.15},
        tooltip=folium.GeoJsonTooltip(
            fields=["label", "size", "radius_m", "span"],
            aliases=["cluster", "requests", "radius (m)", "dates"],
        ),
    ).add_to(fmap)


def density_overlay(run: AnalysisRun, *, width: int = 800) -> tuple[bytes, list[list[float]]]:
    """The kernel density surface of a density run as a PNG for a Leaflet image overlay, and
    its bounds [[south, west], [north, east]]. The surface was computed in metres in the run's
    projected CRS; the image is resampled on a Web Mercator grid (what Leaflet stretches an
    overlay in) so it lies exactly where it belongs."""
    result = run.result
    values = np.asarray(result["values"], dtype=float)
    rows, cols = values.shape
    x0, y0, cell = result["x0"], result["y0"], result["cell_m"]
    to_wgs = Transformer.from_crs(result["srid"], 4326, always_xy=True)
    xs = np.array([x0, x0 + cols * cell, x0, x0 + cols * cell])
    ys = np.array([y0, y0, y0 + rows * cell, y0 + rows * cell])
    lons, lats = to_wgs.transform(xs, ys)
    west, east, south, north = lons.min(), lons.max(), lats.min(), lats.max()
    to_merc = Transformer.from_crs(4326, 3857, always_xy=True)
    (mx0, mx1), (my0, my1) = to_merc.transform([west, east], [south, north])
    height = max(1, int(round(width * (my1 - my0) / (mx1 - mx0))))
    px = mx0 + (np.arange(width) + 0.5) * (mx1 - mx0) / width
    py = my1 - (np.arange(height) + 0.5) * (my1 - my0) / height
    grid_x, grid_y = np.meshgrid(px, py)
    back = Transformer.from_crs(3857, result["srid"], always_xy=True)
    ux, uy = back.transform(grid_x.ravel(), grid_y.ravel())
    # Grid value (row, col) sits at the centre of its cell.
    sampled = map_coordinates(
        values, [(uy - y0) / cell - 0.5, (ux - x0) / cell - 0.5], order=1, cval=0.0
    ).reshape(height, width)
    peak = float(values.max()) or 1.0
    level = np.clip(sampled / peak, 0.0, 1.0)
    rgba = matplotlib.colormaps["magma_r"](level)
    rgba[..., 3] = np.clip(level * 1.6, 0.0, 0.85)
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, rgba, format="png")
    return buffer.getvalue(), [[float(south), float(west)], [float(north), float(east)]]


def add_density_layer(fmap: folium.Map, *, run: AnalysisRun) -> None:
    png, bounds = density_overlay(run)
    folium.raster_layers.ImageOverlay(
        image=_data_uri("image/png", png),
        bounds=bounds,
        name=f"Kernel density ({run.result['bandwidth_m']:g} m bandwidth)",
        show=False,
        opacity=1.0,
    ).add_to(fmap)


def add_outline_layer(fmap: folium.Map, *, layer: str, name: str) -> None:
    version = LayerVersion.objects.filter(layer__slug=layer, status=VersionStatus.ACTIVE).first()
    if version is None:
        return
    from boundaries.selectors import layer_boundaries_geojson

    outlines = json.loads(layer_boundaries_geojson(version=version, simplify_m=20.0))
    folium.GeoJson(
        _rounded(outlines),
        name=name,
        style_function=lambda f: {"color": "#444444", "weight": 0.8, "fillOpacity": 0.0},
        tooltip=folium.GeoJsonTooltip(fields=["code", "name"], aliases=[layer, ""]),
    ).add_to(fmap)


def add_equity_layer(fmap: folium.Map, *, equity_geojson: dict, layer: str) -> None:
    def style(feature: dict) -> dict:
        ratio = feature["properties"].get("ratio_to_city")
        return {
            "fillColor": _ratio_colour(ratio),
            "color": "#555555",
            "weight": 0.7,
            "fillOpacity": 0.75 if ratio is not None else 0.1,
        }

    for feature in equity_geojson["features"]:
        props = feature["properties"]
        props["flag"] = "few requests" if props.get("few_requests") else ""
    folium.GeoJson(
        _rounded(equity_geojson),
        name=f"Median days to close per {layer} against the city",
        style_function=style,
        tooltip=folium.GeoJsonTooltip(
            fields=["area", "name", "closed", "close_median_d", "ratio_to_city", "flag"],
            aliases=[layer, "", "closed requests", "median days to close", "× city median", ""],
        ),
    ).add_to(fmap)


def _ratio_colour(ratio: float | None) -> str:
    if ratio is None:
        return "#ffffff"
    steps = [(0.6, "#1a9850"), (0.8, "#91cf60"), (0.95, "#d9ef8b"), (1.05, "#ffffbf"),
             (1.25, "#fee08b"), (1.5, "#fc8d59")]  # fmt: skip
    for limit, colour in steps:
        if ratio < limit:
            return colour
    return "#d73027"


def _legend(items: Sequence[tuple[str, str]], title: str) -> str:
    rows = "".join(
        f'<div><span style="background:{c};width:14px;height:14px;display:inline-block;'
        f'margin-right:6px;border:1px solid #999"></span>{html.escape(label)}</div>'
        for c, label in items
    )
    return f'<div class="legend"><strong>{html.escape(title)}</strong>{rows}</div>'


# --- charts ------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    """A matplotlib figure without pyplot (no global state, safe in a server)."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _png(fig: Figure) -> str:
    """The figure as a PNG data: URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return _data_uri("image/png", buffer.getvalue())


def _img(uri: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{uri}">' if uri else ""


def charts(report: dict) -> dict[str, str]:
    """The performance charts of a report as PNG data: URIs (empty when there is nothing to
    draw): the monthly trend, per category, per department, per area, equity."""
    layer = report["layer"] or ""
    return {
        "trend": chart_trend(report),
        "categories": chart_bars(report["by_category"], key="category", title="Per category")
        if len(report["by_category"]) > 1
        else "",
        "departments": chart_bars(report["by_department"], key="department", title="Per department")
        if len(report["by_department"]) > 1
        else "",
        "areas": chart_bars(report["by_area"], key="area", title=f"Per {layer}, the busiest")
        if layer
        else "",
        "equity": chart_equity(report["equity"], layer=layer) if layer else "",
    }


def chart_trend(report: dict) -> str:
    """Requests per month (bars), median days to close (line) and backlog at month end."""
    months = [r["month"] for r in report["by_month"]]
    if not months:
        return ""
    backlog: dict[str, int] = {}
    for row in report["backlog"]:
        backlog[row["month"]] = backlog.get(row["month"], 0) + row["open_at_month_end"]
    fig, ax = _figure(10, 3.6)
    x = np.arange(len(months))
    ax.bar(x, [r["requests"] for r in report["by_month"]], color="#9ecae1", label="requests")
    ax.plot(x, [backlog.get(m, 0) for m in months], color="#3182bd", label="open at month end")
    ax.set_ylabel("requests")
    ax2 = ax.twinx()
    medians = [r["close_median_d"] if r["close_median_d"] is not None else np.nan
               for r in report["by_month"]]  # fmt: skip
    ax2.plot(x, medians, color="#e6550d", marker="o", markersize=3, label="median days to close")
    ax2.set_ylabel("days")
    step = max(1, len(months) // 12)
    ax.set_xticks(x[::step], months[::step], rotation=45, ha="right")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title("Requests, backlog and time to close, by month")
    return _png(fig)


def chart_bars(rows: list[dict], *, key: str, title: str, top: int = 25) -> str:
    """Requests (bars) and median days to close (dots) per ``key`` (category, department, …)."""
    rows = sorted(rows, key=lambda r: -r["requests"])[:top]
    if not rows:
        return ""
    fig, ax = _figure(10, max(2.0, 0.3 * len(rows) + 1))
    y = np.arange(len(rows))
    ax.barh(y, [r["requests"] for r in rows], color="#9ecae1")
    ax.set_yticks(y, [str(r[key]) or "(none)" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("requests")
    ax2 = ax.twiny()
    ax2.plot([r["close_median_d"] or np.nan for r in rows], y, "o", color="#e6550d")
    ax2.set_xlabel("median days to close", color="#e6550d")
    ax.set_title(title, pad=28)
    return _png(fig)


def chart_equity(equity: list[dict], *, layer: str) -> str:
    rows = [r for r in equity if r["close_median_d"] is not None and r["area"]]
    if not rows:
        return ""
    rows.sort(key=lambda r: r["close_median_d"])
    fig, ax = _figure(10, 3.6)
    x = np.arange(len(rows))
    ax.bar(x, [r["close_median_d"] for r in rows],
           color=[_ratio_colour(r["ratio_to_city"]) for r in rows], edgecolor="#777")  # fmt: skip
    ax.axhline(rows[0]["city_median_d"], color="#333", linestyle="--", label="city median")
    ax.set_xticks(x, [r["area"] for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel("median days to close")
    ax.set_title(f"Median days to close per {layer} against the city median")
    ax.legend(fontsize=8)
    return _png(fig)


def chart_classes(summary: dict, *, title: str) -> str:
    by_bin = {int(k): v for k, v in summary.get("by_bin", {}).items()}
    bins = [-3, -2, -1, 0, 1, 2, 3]
    fig, ax = _figure(10, 2.8)
    short = {b: BIN_LABELS[b].replace(" spot, ", " ").replace(" confidence", "") for b in bins}
    ax.bar([short[b] for b in bins], [by_bin.get(b, 0) for b in bins],
           color=[BIN_COLOURS[b] for b in bins], edgecolor="#777")  # fmt: skip
    ax.set_ylabel("cells")
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(title)
    return _png(fig)


# --- the report --------------------------------------------------------------------------------


def _table(rows: list[dict], columns: Sequence[tuple[str, str]], limit: int = 60) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = []
    for row in rows[:limit]:
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if isinstance(value, bool):
                text = "yes" if value else ""
            elif value is None:
                text = ""
            elif isinstance(value, int):
                text = f"{value:,}"
            else:
                text = str(value) or "(none)"
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = f"<p class='note'>… and {len(rows) - limit} more rows.</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1rem;
       color: #222; height: auto; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.85rem; } img { max-width: 100%; }
.legend { background: #fff; padding: 6px 8px; font-size: 0.8rem; border: 1px solid #bbb;
          display: inline-block; margin: 4px 0; }
.folium-map { margin: 0.5rem 0 1rem; }
"""


class _Document:
    """A report page: HTML sections in order, folium maps among them (their styles in the
    head, their scripts at the end), Leaflet once, inline."""

    def __init__(self, title: str):
        self.title = title
        self.head: list[str] = []
        self.body: list[str] = []
        self.scripts: list[str] = []

    def add(self, fragment: str) -> None:
        self.body.append(fragment)

    def add_map(self, fmap: folium.Map) -> None:
        root = fmap.get_root()
        assert isinstance(root, folium.Figure)
        root.render()
        self.head.append(root.header.render())
        self.body.append(root.html.render())
        self.scripts.append(root.script.render())

    def render(self) -> str:
        script, css = leaflet_assets()
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title>"
            f'<script src="{script}"></script><link rel="stylesheet" href="{css}">'
            + "".join(self.head)
            + f"<style>{STYLE}</style></head><body>"
            + "".join(self.body)
            + "<script>"
            + "\n".join(self.scripts)
            + "</script></body></html>"
        )


def report_html(
    *,
    request_filter: RequestFilter,
    performance: dict,
    equity_geojson: dict,
    hotspots: AnalysisRun | None = None,
    emerging: AnalysisRun | None = None,
    clusters: AnalysisRun | None = None,
    density: AnalysisRun | None = None,
    title: str = "Hot spots and service performance",
    outline_layer: str | None = None,
) -> str:
    """The planner report as one self-contained HTML document (text)."""
    doc = _Document(title)
    city = performance["city"]
    layer = performance["layer"] or ""
    generated = timezone.localtime().strftime("%Y-%m-%d %H:%M %Z")
    intro = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(request_filter.describe())}. {city['requests']:,} requests, "
        f"{city['closed']:,} closed; median {city['close_median_d']} days to close "
        f"(90th percentile {city['close_p90_d']}). Generated {generated}.</p>",
    ]
    doc.add("".join(intro))
    bounds = _extent(hotspots, clusters)
    if hotspots is not None:
        summary = hotspots.result
        params = hotspots.params
        cells = (
            f"hexagons of {params['size_m']:g} m edge"
            if params["cells"] == "hex"
            else f"the boundaries of {params['cells']}"
        )
        weights = (
            f"a {summary['band_m']:,.0f} m distance band"
            if summary.get("weights") == "distance"
            else f"the {summary.get('k')} nearest cells"
        )
        doc.add(
            "<h2>Where problems concentrate</h2>"
            f"<p>Getis-Ord Gi* on {summary['cells']:,} {cells} (EPSG:{summary['srid']}, metres) "
            f"with {weights} as neighbours; significance corrected for the number of cells "
            f"tested (false discovery rate, Benjamini-Hochberg) as ArcGIS's Optimized Hot Spot "
            f"Analysis does. <strong>{summary['hot']:,}</strong> cells are hot spots and "
            f"<strong>{summary['cold']:,}</strong> cold spots at 90% confidence or more. "
            "Non-significant cells are not drawn. Toggle clusters, density and emerging "
            "patterns in the layer control.</p>"
        )  # fmt: skip
        fmap = offline_map(bounds=bounds)
        if outline_layer:
            add_outline_layer(fmap, layer=outline_layer, name=f"{outline_layer} outlines")
        add_hotspot_layer(fmap, run=hotspots, name="Hot and cold spots (Gi*, FDR)")
        if emerging is not None:
            add_emerging_layer(fmap, run=emerging)
        if clusters is not None:
            add_cluster_layer(fmap, run=clusters)
        if density is not None:
            add_density_layer(fmap, run=density)
        folium.LayerControl(collapsed=False).add_to(fmap)
        doc.add_map(fmap)
        doc.add(
            _legend(
                [(BIN_COLOURS[b], BIN_LABELS[b]) for b in (3, 2, 1, -1, -2, -3)], "Gi* class"
            )  # fmt: skip
        )
        doc.add(_img(chart_classes(summary, title="Cells per class"), "cells per class"))
    if emerging is not None:
        patterns = emerging.result.get("patterns", {})
        rows = [
            {"pattern": k, "cells": v} for k, v in sorted(patterns.items(), key=lambda i: -i[1])
        ]
        doc.add(
            "<h2>Emerging hot spots</h2>"
            f"<p>Gi* in each of {emerging.result['slices']} {emerging.result['slice']}s on "
            f"{emerging.result['cells']:,} hexagons of {emerging.params['size_m']:g} m, and the "
            "Mann-Kendall trend of each cell's z-scores, read as ArcGIS's Emerging Hot Spot "
            "Analysis patterns (new, consecutive, intensifying, persistent, diminishing, "
            "sporadic, oscillating, historical).</p>"
            + _table(rows, [("pattern", "pattern"), ("cells", "cells")])
        )  # fmt: skip
    if clusters is not None:
        top = [
            {**f["properties"], "lat": f["properties"]["centre"][1],
             "lon": f["properties"]["centre"][0], "first": f["properties"]["first_at"][:10],
             "last": f["properties"]["last_at"][:10]}
            for f in json.loads(selectors.clusters_geojson(run=clusters))["features"][:20]
        ]  # fmt: skip
        doc.add(
            "<h2>Clusters</h2>"
            f"<p>DBSCAN (ST_ClusterDBSCAN) with {clusters.params['eps_m']:g} m and at least "
            f"{clusters.params['min_points']} requests: {clusters.result['clusters']:,} "
            f"clusters hold {clusters.result['clustered_requests']:,} requests. The largest:</p>"
            + _table(top, [("label", "cluster"), ("size", "requests"), ("radius_m", "radius m"),
                           ("first", "first"), ("last", "last"), ("lat", "lat"),
                           ("lon", "lon")])
        )  # fmt: skip
    drawn = charts(performance)
    doc.add("<h2>Service performance</h2>")
    doc.add(_img(drawn["trend"], "requests, backlog and days to close by month"))
    doc.add(
        "<p class='note'>Time to acknowledge runs to a request's first status change; "
        f"{city['acknowledged_by_closing']:,} of {city['acknowledged']:,} acknowledged requests "
        "were first answered by their closing (imported history records only creation and "
        f"closing). {city['unacknowledged']:,} requests never changed status. SLA: "
        f"{city['with_sla']:,} requests had an expected time"
        + (f", {city['sla_compliance_pct']}% met it." if city["sla_compliance_pct"] is not None
           else ".")
        + "</p>"
    )  # fmt: skip
    month_columns = [
        ("month", "month"), ("requests", "requests"), ("closed", "closed"),
        ("ack_median_h", "ack median h"), ("ack_p90_h", "ack p90 h"),
        ("close_median_d", "close median d"), ("close_p90_d", "close p90 d"),
        ("sla_compliance_pct", "SLA met %"),
    ]  # fmt: skip
    doc.add(_table(performance["by_month"], month_columns, 120))
    doc.add(
        _img(drawn["categories"], "per category") + _img(drawn["departments"], "per department")
    )
    if layer:
        doc.add(
            f"<h2>Equity: days to close per {html.escape(layer)}</h2>"
            f"<p>Median days to close per {html.escape(layer)} against the city median of "
            f"{city['close_median_d']} days; green is faster, red slower. Areas with fewer than "
            "30 closed requests are flagged.</p>"
        )  # fmt: skip
        emap = offline_map(bounds=bounds, height="520px")
        add_equity_layer(emap, equity_geojson=equity_geojson, layer=layer)
        folium.LayerControl(collapsed=False).add_to(emap)
        doc.add_map(emap)
        doc.add(_img(drawn["equity"], "median days to close per area"))
        doc.add(_img(drawn["areas"], "requests and days to close per area"))
        equity_rows = sorted(performance["equity"], key=lambda r: -(r["ratio_to_city"] or 0))
        doc.add(_table(equity_rows, [
            ("area", layer), ("closed", "closed"), ("close_median_d", "median d"),
            ("close_p90_d", "p90 d"), ("ratio_to_city", "× city"),
            ("difference_d", "± days"), ("few_requests", "few requests"),
        ], 100))  # fmt: skip
    open_rows = [r for r in performance["open_work"] if not r["total"]]
    open_rows.sort(key=lambda r: -r["open"])
    total = next((r for r in performance["open_work"] if r["total"]), None)
    if total:
        for row in [*open_rows, total]:
            for bucket, n in row["age_days"].items():
                row[f"age {bucket}"] = n
        doc.add(
            f"<h2>Open work</h2><p>{total['open']:,} requests are open now; "
            f"{total['overdue']:,} past their expected time.</p>"
            + _table([*open_rows, {**total, "department": "all"}], [
                ("department", "department"), ("category", "category"), ("area", layer or "area"),
                ("open", "open"), *((f"age {b}", f"{b} d") for b in total["age_days"]),
                ("median_age_d", "median age d"), ("overdue", "overdue"),
                ("unacknowledged", "never acknowledged"),
            ], 40)
        )  # fmt: skip
    doc.add(
        f"<p class='note'>geo311 · {html.escape(settings.GEO311_JURISDICTION_ID)} · data as of "
        f"{html.escape(str(performance.get('facts_as_of', ''))[:19])} · times in "
        f"{html.escape(performance['time_zone'])}.</p>"
    )  # fmt: skip
    return doc.render()


def _extent(*runs: AnalysisRun | None) -> list[float] | None:
    """(west, south, east, north) of the first run's cells or clusters."""
    for run in runs:
        if run is None:
            continue
        box = (
            run.cells.aggregate(e=Extent("geom"))["e"]
            or run.clusters.aggregate(e=Extent("geom"))["e"]
        )
        if box:
            return list(box)
    return None


def report_filename(request_filter: RequestFilter) -> str:
    parts = ["geo311-report", *request_filter.categories[:3]]
    if request_filter.start:
        parts.append(request_filter.start.isoformat())
    if request_filter.end:
        parts.append(request_filter.end.isoformat())
    return "_".join(parts) + ".html"
