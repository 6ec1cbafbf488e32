"""Writes for analyses: ask for a run (answered from the store or queued as a job), execute it
with progress, store its cells or clusters; load denominators.

``analysis_request`` is what the API, the planner page and the ``hotspots`` command call; the
procrastinate task ``maps.tasks.run_analysis`` (or the command, inline) calls
``analysis_execute``. Cells are built in metres in the run's projected CRS and stored in
EPSG:4326.
"""

import datetime as dt
import hashlib
import json
import logging
import traceback
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pyproj import Transformer

from boundaries.models import Layer, LayerKind, LayerVersion
from geo311.models import Status

from . import analysis, selectors, sql
from .filters import RequestFilter
from .models import AnalysisKind, AnalysisRun, Denominator, RefreshMark, RunStatus

logger = logging.getLogger(__name__)
Progress = Callable[[int, str], None]

# Defaults a planner can change per run (metres unless named otherwise).
DEFAULTS: dict[str, dict[str, Any]] = {
    AnalysisKind.HOTSPOTS: {
        "cells": "hex",
        "size_m": 250.0,
        "weights": "distance",
        "band_m": None,  # hexagons: two rings of neighbours (3.5 edges); boundaries: knn
        "k": 8,
        "normalize": "",
        "within": None,  # None: the city outline when there is one
    },
    AnalysisKind.EMERGING: {
        "size_m": 500.0,
        "weights": "distance",
        "band_m": None,
        "k": 8,
        "slice": "month",
        "trend_alpha": 0.05,
        "within": None,
    },
    AnalysisKind.CLUSTERS: {"eps_m": 50.0, "min_points": 5},
    AnalysisKind.DENSITY: {"bandwidth_m": 300.0, "cell_m": None},
}
# The density grid is capped at this many cells a side (the cell grows to fit).
MAX_DENSITY_CELLS = 600


# --- asking for a run ------------------------------------------------------------------------


def analysis_params(*, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters: the defaults of ``kind`` updated by ``params``, checked, with the
    projected CRS, the versions and denominators they name resolved. ValidationError names
    the parameter."""
    if kind not in DEFAULTS:
        raise ValidationError({"kind": f"unknown analysis {kind!r}"})
    unknown = sorted(set(params) - set(DEFAULTS[kind]))
    if unknown:
        raise ValidationError({unknown[0]: f"not a parameter of {kind} analyses"})
    resolved = {**DEFAULTS[kind], **{k: v for k, v in params.items() if v is not None}}
    resolved["srid"] = selectors.analysis_srid()
    for name in ("size_m", "band_m", "eps_m", "bandwidth_m", "cell_m"):
        value = resolved.get(name)
        if value is not None and not (0 < float(value) <= 50_000):
            raise ValidationError({name: "must be between 0 and 50,000 metres"})
    if kind in (AnalysisKind.HOTSPOTS, AnalysisKind.EMERGING):
        if resolved["weights"] not in ("distance", "knn"):
            raise ValidationError({"weights": "distance or knn"})
        if not 1 <= int(resolved["k"]) <= 100:
            raise ValidationError({"k": "between 1 and 100"})
        within = resolved["within"]
        outline = selectors.jurisdiction_version_ids()
        resolved["within_versions"] = outline if (within is None or within) else []
        if within and not outline:
            raise ValidationError({"within": "the city has no outline layer (kind jurisdiction)"})
    if kind == AnalysisKind.HOTSPOTS:
        if resolved["cells"] != "hex":
            try:
                version = selectors.layer_active_version(slug=resolved["cells"])
            except (Layer.DoesNotExist, LayerVersion.DoesNotExist):
                raise ValidationError(
                    {
                        "cells": f"'hex' or a boundary layer with an active version, not "
                        f"{resolved['cells']!r}"
                    }
                ) from None
            resolved["version_id"] = version.pk
        normalize = resolved["normalize"]
        if normalize not in ("", "all_requests"):
            try:
                denominator = selectors.denominator_get(slug=normalize)
            except Denominator.DoesNotExist:
                raise ValidationError(
                    {"normalize": f"'all_requests' or a denominator, not {normalize!r}"}
                ) from None
            resolved["denominator_id"] = denominator.pk
            resolved["denominator_loaded"] = denominator.loaded_at.isoformat()
    if kind == AnalysisKind.EMERGING and resolved["slice"] not in ("month", "week"):
        raise ValidationError({"slice": "month or week"})
    if kind == AnalysisKind.CLUSTERS and not 2 <= int(resolved["min_points"]) <= 1000:
        raise ValidationError({"min_points": "between 2 and 1000"})
    return resolved


def run_key(*, kind: str, request_filter: RequestFilter, params: dict) -> str:
    """What a run answers: the same kind, filter and resolved parameters are one question."""
    text = json.dumps(
        {"kind": kind, "filter": request_filter.as_dict(), "params": params},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _still_answers(run: AnalysisRun, *, version: str) -> bool:
    """A stored run answers for the data it read, or while it is younger than
    ``GEO311_ANALYSIS_MAX_AGE`` seconds (a busy city changes its data every few seconds; a
    planner's question need not be recomputed for each new request). A queued or running run
    is the answer in the making."""
    if run.status in (RunStatus.QUEUED, RunStatus.RUNNING) or run.data_version == version:
        return True
    age = (timezone.now() - run.created_at).total_seconds()
    return run.status == RunStatus.DONE and age < settings.GEO311_ANALYSIS_MAX_AGE


@transaction.atomic
def analysis_request(
    *,
    kind: str,
    request_filter: RequestFilter,
    params: dict[str, Any] | None = None,
    user: Any = None,
    refresh: bool = False,
    defer: bool = True,
) -> AnalysisRun:
    """The run answering this question: the stored one while it still answers (queued,
    running, or done on the same data or recently: ``_still_answers``), else a new run queued
    as a job in this transaction (``defer=False``: left queued for the caller to execute
    inline). ``refresh`` drops a stored answer and asks again."""
    request_filter.params()  # unknown codes are the caller's to fix, before anything is queued
    resolved = analysis_params(kind=kind, params=params or {})
    version = sql.data_version()
    key = run_key(kind=kind, request_filter=request_filter, params=resolved)
    existing = selectors.run_find(key=key)
    stale = existing and (refresh or not _still_answers(existing, version=version))
    if existing and stale and existing.status != RunStatus.RUNNING:
        existing.delete()  # its cells and clusters with it
        existing = None
    if existing:
        return existing
    run = AnalysisRun(
        kind=kind,
        key=key,
        filter=request_filter.as_dict(),
        params=resolved,
        data_version=version,
        created_by=user if getattr(user, "pk", None) else None,
    )
    run.full_clean()
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:
        # Asked at the same moment by someone else: theirs is the answer.
        found = selectors.run_find(key=key)
        if found is None:
            raise
        return found
    if defer:
        from .tasks import run_analysis

        run.job_id = run_analysis.defer(run_id=run.pk)
        run.save(update_fields=["job_id"])
    return run


# --- executing a run --------------------------------------------------------------------------


def _progress_writer(run: AnalysisRun) -> Progress:
    def write(percent: int, message: str) -> None:
        AnalysisRun.objects.filter(pk=run.pk).update(progress=percent, message=message[:300])
        logger.info("analysis %s #%s: %s%% %s", run.kind, run.pk, percent, message)

    return write


def analysis_execute(*, run_id: int) -> AnalysisRun:
    """Compute a queued run, reporting progress on the row as it goes (each update commits on
    its own when called outside a transaction, as the worker does), and store its result.
    A failure is stored on the run (status failed, the error) and re-raised."""
    run = AnalysisRun.objects.get(pk=run_id)
    if run.status == RunStatus.DONE:
        return run
    AnalysisRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), progress=0, error=""
    )
    progress = _progress_writer(run)
    try:
        runner = RUNNERS[run.kind]
        result = runner(run, progress)
    except Exception as exc:
        AnalysisRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error=f"{exc}\n\n{traceback.format_exc()}"[:10_000],
            message=str(exc)[:300],
        )
        raise
    AnalysisRun.objects.filter(pk=run.pk).update(
        status=RunStatus.DONE,
        progress=100,
        message="done",
        result=result,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


# --- hot spots --------------------------------------------------------------------------------


@dataclass
class Cells:
    """The cells of one analysis: ids, centres (metres), requests, and for hexagons (i, j)."""

    table: pd.DataFrame  # cell, count, denominator, value, x, y[, i, j]
    hexagons: bool
    excluded: int = 0  # cells with requests but no denominator

    @property
    def xy(self) -> np.ndarray:
        return self.table[["x", "y"]].to_numpy()


def _hex_frame(columns: list[np.ndarray], name: str) -> pd.DataFrame:
    """(i, j, value) arrays as a frame with the value named ``name``."""
    i, j, values = columns
    return pd.DataFrame({"i": i.astype(int), "j": j.astype(int), name: values})


def hex_request_counts(*, filter_params: dict, srid: int, size_m: float) -> list[np.ndarray]:
    """(i, j, requests) of every hexagon holding a filtered request: binned by PostGIS, or,
    outside a transaction with GEO311_ANALYSIS_CONNECTIONS > 1 (the worker, the command), the
    points projected by PostGIS on several connections at once and binned here with the same
    arithmetic (``analysis.hex_index``)."""
    parallel = settings.GEO311_ANALYSIS_CONNECTIONS
    if parallel > 1 and not connection.in_atomic_block:
        xy = sql.projected_points(filter_params=filter_params, srid=srid, parallel=parallel)
        i, j = analysis.hex_index(xy[:, 0], xy[:, 1], size_m=size_m)
        if not len(i):
            return [np.zeros(0), np.zeros(0), np.zeros(0)]
        # One integer key per cell (j spans far less than 2**32), counted.
        key = (i - i.min()) * (1 << 32) + (j - j.min())
        cells, counts = np.unique(key, return_counts=True)
        return [cells // (1 << 32) + i.min(), cells % (1 << 32) + j.min(), counts]
    return sql.hex_counts(filter_params=filter_params, srid=srid, size_m=size_m)


def hex_cells(
    *,
    filter_params: dict,
    srid: int,
    size_m: float,
    within_versions: list[int],
    normalize: str = "",
    denominator_id: int | None = None,
    date_params: dict | None = None,
) -> Cells:
    """Hexagons with their requests: every hexagon holding one, plus (``within_versions``)
    every hexagon whose centre lies inside the city outline, with 0. With a denominator the
    cells are those where it is positive and ``value`` is requests per unit of it."""
    frame = _hex_frame(
        hex_request_counts(filter_params=filter_params, srid=srid, size_m=size_m), "count"
    )
    if within_versions:
        i, j = sql.hex_cells_within(version_ids=within_versions, srid=srid, size_m=size_m)
        frame = frame.merge(_hex_frame([i, j, np.ones(len(i))], "inside"), how="outer")
        frame["count"] = frame["count"].fillna(0)
        frame = frame.drop(columns="inside")
    excluded = 0
    if normalize == "all_requests":
        den = _hex_frame(
            hex_request_counts(filter_params=date_params or {}, srid=srid, size_m=size_m),
            "denominator",
        )
    elif denominator_id is not None:
        den = _hex_frame(
            sql.hex_denominator(denominator_id=denominator_id, srid=srid, size_m=size_m),
            "denominator",
        )
    else:
        den = None
    if den is not None:
        merged = frame.merge(den, how="outer")
        merged["count"] = merged["count"].fillna(0)
        positive = merged["denominator"].fillna(0) > 0
        excluded = int(((merged["count"] > 0) & ~positive).sum())
        frame = merged[positive].copy()
        frame["value"] = frame["count"] / frame["denominator"]
    else:
        frame["denominator"] = np.nan
        frame["value"] = frame["count"].astype(float)
    frame = frame.sort_values(["i", "j"]).reset_index(drop=True)
    xy = analysis.hex_centres(frame["i"].to_numpy(), frame["j"].to_numpy(), size_m=size_m)
    frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
    frame["cell"] = frame["i"].astype(str) + ":" + frame["j"].astype(str)
    frame["count"] = frame["count"].astype(int)
    return Cells(table=frame, hexagons=True, excluded=excluded)


def boundary_cells(
    *,
    filter_params: dict,
    srid: int,
    version_id: int,
    normalize: str = "",
    denominator_id: int | None = None,
    date_params: dict | None = None,
) -> Cells:
    """Every boundary of a version with its requests (0 included), centred on a point inside
    it. With a denominator, boundaries where it is not positive are left out."""
    rows = sql.boundary_counts(filter_params=filter_params, version_id=version_id, srid=srid)
    frame = pd.DataFrame(rows, columns=["cell", "count", "x", "y"])
    excluded = 0
    if normalize == "all_requests":
        all_rows = sql.boundary_counts(
            filter_params=date_params or {}, version_id=version_id, srid=srid
        )
        frame["denominator"] = [r[1] for r in all_rows]
    elif denominator_id is not None:
        sums = sql.boundary_denominator(denominator_id=denominator_id, version_id=version_id)
        frame["denominator"] = frame["cell"].map(sums).fillna(0.0)
    else:
        frame["denominator"] = np.nan
    if normalize:
        positive = frame["denominator"] > 0
        excluded = int(((frame["count"] > 0) & ~positive).sum())
        frame = frame[positive].reset_index(drop=True)
        frame["value"] = frame["count"] / frame["denominator"]
    else:
        frame["value"] = frame["count"].astype(float)
    return Cells(table=frame, hexagons=False, excluded=excluded)


def cell_weights(*, cells: Cells, params: dict) -> tuple[Any, dict]:
    """The weights a run asked for, and what they were (for the summary)."""
    xy = cells.xy
    weights = params["weights"]
    if not cells.hexagons and params.get("band_m") is None:
        weights = "knn"  # boundaries of very different sizes: no one distance suits them all
    if weights == "knn":
        k = min(int(params["k"]), len(xy) - 1)
        return analysis.knn_weights(xy, k=k), {"weights": "knn", "k": k}
    band = params.get("band_m") or 3.5 * float(params["size_m"])
    return analysis.distance_band_weights(xy, band_m=band), {"weights": "distance", "band_m": band}


def _date_only(filter_params: dict) -> dict:
    return {**filter_params, "category_ids": None, "department_ids": None, "status_ids": None}


def run_hotspots(run: AnalysisRun, progress: Progress) -> dict:
    params = run.params
    request_filter = RequestFilter.from_dict(run.filter)
    filter_params = request_filter.params()
    progress(5, "binning requests")
    if params["cells"] == "hex":
        cells = hex_cells(
            filter_params=filter_params,
            srid=params["srid"],
            size_m=params["size_m"],
            within_versions=params["within_versions"],
            normalize=params["normalize"],
            denominator_id=params.get("denominator_id"),
            date_params=_date_only(filter_params),
        )
    else:
        cells = boundary_cells(
            filter_params=filter_params,
            srid=params["srid"],
            version_id=params["version_id"],
            normalize=params["normalize"],
            denominator_id=params.get("denominator_id"),
            date_params=_date_only(filter_params),
        )
    table = cells.table
    if len(table) < 3:
        raise analysis.AnalysisError(
            f"only {len(table)} cells hold requests for {request_filter.describe()}; widen the "
            "filter or use smaller cells"
        )
    progress(40, f"weights for {len(table):,} cells")
    weights, used = cell_weights(cells=cells, params=params)
    progress(60, "Gi* and false discovery rate")
    result = analysis.gi_star(table["value"].to_numpy(), weights)
    progress(75, "storing cells")
    classes = [analysis.hotspot_class(int(b)) for b in result.gi_bin]
    rows = _cell_rows(table, result.z, result.p, result.q, result.gi_bin, classes)
    with transaction.atomic():
        run.cells.all().delete()
        stored = sql.store_cells(
            run_id=run.pk,
            rows=rows,
            srid=params["srid"],
            size_m=params["size_m"] if cells.hexagons else None,
            version_id=None if cells.hexagons else params["version_id"],
        )
    return {
        **result.summary(),
        **used,
        "stored": stored,
        "requests": int(table["count"].sum()),
        "excluded_without_denominator": cells.excluded,
        "srid": params["srid"],
    }


def _cell_rows(
    table: pd.DataFrame,
    z: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    gi_bin: np.ndarray,
    classes: list[str],
    *,
    trend_z: np.ndarray | None = None,
    trend_p: np.ndarray | None = None,
    series: np.ndarray | None = None,
) -> list[tuple]:
    i = table["i"].to_numpy() if "i" in table else np.full(len(table), None)
    j = table["j"].to_numpy() if "j" in table else np.full(len(table), None)
    den = table["denominator"].to_numpy()
    rows = []
    for n in range(len(table)):
        rows.append(
            (
                table["cell"].iat[n],
                None if i[n] is None else int(i[n]),
                None if j[n] is None else int(j[n]),
                int(table["count"].iat[n]),
                None if np.isnan(den[n]) else float(den[n]),
                float(table["value"].iat[n]),
                float(z[n]),
                float(p[n]),
                float(q[n]),
                int(gi_bin[n]),
                classes[n],
                None if trend_z is None else float(trend_z[n]),
                None if trend_p is None else float(trend_p[n]),
                None if series is None else [round(float(v), 4) for v in series[n]],
            )
        )
    return rows


# --- emerging hot spots -----------------------------------------------------------------------


def _slices(*, request_filter: RequestFilter, unit: str, bounds: tuple) -> tuple[int, int, dict]:
    """(first month index, number of slices, filter params with a start) for the range of the
    filter, or of the data when the filter leaves it open."""
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    first_at, last_at = bounds
    start = request_filter.start or first_at.astimezone(tz).date()
    end = request_filter.end or last_at.astimezone(tz).date()
    bounded = RequestFilter(
        categories=request_filter.categories,
        departments=request_filter.departments,
        statuses=request_filter.statuses,
        start=start,
        end=end,
    )
    if unit == "month":
        first = start.year * 12 + start.month - 1
        count = end.year * 12 + end.month - 1 - first + 1
    else:
        count = (end - start).days // 7 + 1
        first = 0
    return first, count, bounded.params()


def run_emerging(run: AnalysisRun, progress: Progress) -> dict:
    params = run.params
    request_filter = RequestFilter.from_dict(run.filter)
    bounds = sql.requested_bounds(filter_params=request_filter.params())
    if bounds[0] is None:
        raise analysis.AnalysisError(f"no request matches {request_filter.describe()}")
    first, slices, filter_params = _slices(
        request_filter=request_filter, unit=params["slice"], bounds=bounds
    )
    if slices < 4:
        raise analysis.AnalysisError(
            f"{slices} {params['slice']}s are too few for a trend; ask for at least 4 (ArcGIS "
            "recommends 10)"
        )
    progress(5, f"binning requests into {slices} {params['slice']}s")
    i, j, t, n = sql.hex_counts_by_slice(
        filter_params=filter_params,
        srid=params["srid"],
        size_m=params["size_m"],
        slice_unit=params["slice"],
        tz=settings.TIME_ZONE,
        first_month=first,
    )
    frame = pd.DataFrame({"i": i.astype(int), "j": j.astype(int), "t": t.astype(int), "n": n})
    frame = frame[(frame["t"] >= 0) & (frame["t"] < slices)]
    cube = frame.pivot_table(index=["i", "j"], columns="t", values="n", aggfunc="sum")
    cube = cube.reindex(columns=range(slices)).fillna(0.0)
    if params["within_versions"]:
        wi, wj = sql.hex_cells_within(
            version_ids=params["within_versions"], srid=params["srid"], size_m=params["size_m"]
        )
        inside = pd.MultiIndex.from_arrays([wi.astype(int), wj.astype(int)], names=["i", "j"])
        cube = cube.reindex(cube.index.union(inside)).fillna(0.0)
    cube = cube.sort_index()
    if len(cube) < 3:
        raise analysis.AnalysisError(f"only {len(cube)} cells hold requests; widen the filter")
    ci = cube.index.get_level_values("i").to_numpy()
    cj = cube.index.get_level_values("j").to_numpy()
    xy = analysis.hex_centres(ci, cj, size_m=params["size_m"])
    table = pd.DataFrame(
        {
            "i": ci,
            "j": cj,
            "cell": [f"{a}:{b}" for a, b in zip(ci, cj, strict=True)],
            "count": cube.sum(axis=1).to_numpy().astype(int),
            "x": xy[:, 0],
            "y": xy[:, 1],
        }
    )
    progress(30, f"weights for {len(table):,} cells")
    weights, used = cell_weights(cells=Cells(table=table, hexagons=True), params=params)
    progress(45, f"Gi* for {slices} slices and Mann-Kendall trends")
    result = analysis.emerging_hot_spots(
        cube.to_numpy(), weights, trend_alpha=float(params["trend_alpha"])
    )
    progress(80, "storing cells")
    table["denominator"] = np.nan
    table["value"] = table["count"].astype(float)
    last_z = result.z[:, -1]
    rows = _cell_rows(
        table,
        last_z,
        analysis.two_sided_p(last_z),
        analysis.fdr_bins(last_z, analysis.two_sided_p(last_z))[0],
        result.gi_bin[:, -1],
        result.pattern,
        trend_z=result.trend_z,
        trend_p=result.trend_p,
        series=result.z,
    )
    with transaction.atomic():
        run.cells.all().delete()
        stored = sql.store_cells(
            run_id=run.pk, rows=rows, srid=params["srid"], size_m=params["size_m"], version_id=None
        )
    return {
        **result.summary(),
        **used,
        "slice": params["slice"],
        "first_slice": filter_params["start"].isoformat(),
        "stored": stored,
        "requests": int(table["count"].sum()),
        "srid": params["srid"],
    }


# --- clusters and density ---------------------------------------------------------------------


def run_clusters(run: AnalysisRun, progress: Progress) -> dict:
    params = run.params
    filter_params = RequestFilter.from_dict(run.filter).params()
    progress(10, "DBSCAN")
    with transaction.atomic():
        run.clusters.all().delete()
        count = sql.store_dbscan_clusters(
            run_id=run.pk,
            filter_params=filter_params,
            srid=params["srid"],
            eps_m=float(params["eps_m"]),
            min_points=int(params["min_points"]),
        )
    sizes = list(run.clusters.values_list("size", flat=True))
    return {
        "clusters": count,
        "clustered_requests": int(sum(sizes)),
        "largest": int(max(sizes)) if sizes else 0,
        "eps_m": params["eps_m"],
        "min_points": params["min_points"],
        "srid": params["srid"],
    }


def run_density(run: AnalysisRun, progress: Progress) -> dict:
    params = run.params
    filter_params = RequestFilter.from_dict(run.filter).params()
    bandwidth = float(params["bandwidth_m"])
    cell = float(params["cell_m"] or max(bandwidth / 5.0, 10.0))
    progress(10, "counting requests on the grid")
    col, row, n = sql.density_counts(filter_params=filter_params, srid=params["srid"], cell_m=cell)
    if len(n) == 0:
        raise analysis.AnalysisError("no request matches the filter")
    pad = int(np.ceil(3 * bandwidth / cell))
    width = int(col.max() - col.min()) + 1 + 2 * pad
    height = int(row.max() - row.min()) + 1 + 2 * pad
    scale = max(1, int(np.ceil(max(width, height) / MAX_DENSITY_CELLS)))
    if scale > 1:  # coarser grid, same extent
        cell *= scale
        col, row = np.floor(col / scale), np.floor(row / scale)
        pad = int(np.ceil(3 * bandwidth / cell))
        width = int(col.max() - col.min()) + 1 + 2 * pad
        height = int(row.max() - row.min()) + 1 + 2 * pad
    grid = np.zeros((height, width))
    np.add.at(grid, ((row - row.min()).astype(int) + pad, (col - col.min()).astype(int) + pad), n)
    progress(50, "kernel density")
    surface = analysis.kernel_density(
        grid,
        x0=float((col.min() - pad) * cell),
        y0=float((row.min() - pad) * cell),
        cell_m=cell,
        bandwidth_m=bandwidth,
    )
    rows, cols = surface.shape
    to_wgs = Transformer.from_crs(params["srid"], 4326, always_xy=True)
    lons, lats = to_wgs.transform(
        [surface.x0, surface.x0 + cols * cell, surface.x0, surface.x0 + cols * cell],
        [surface.y0, surface.y0, surface.y0 + rows * cell, surface.y0 + rows * cell],
    )
    return {
        "srid": params["srid"],
        # [[south, west], [north, east]] of the grid, for a map overlay
        "bounds": [[min(lats), min(lons)], [max(lats), max(lons)]],
        "x0": surface.x0,
        "y0": surface.y0,
        "cell_m": cell,
        "bandwidth_m": bandwidth,
        "shape": list(surface.shape),
        "unit": "requests per km²",
        "max": float(surface.values.max()),
        "requests": int(n.sum()),
        # 3 significant digits: the surface is for display.
        "values": [[float(f"{v:.3g}") for v in line] for line in surface.values],
    }


RUNNERS: dict[str, Callable[[AnalysisRun, Progress], dict]] = {
    AnalysisKind.HOTSPOTS: run_hotspots,
    AnalysisKind.EMERGING: run_emerging,
    AnalysisKind.CLUSTERS: run_clusters,
    AnalysisKind.DENSITY: run_density,
}


# --- denominators -----------------------------------------------------------------------------


@transaction.atomic
def denominator_load(
    *,
    slug: str,
    name: str,
    unit: str,
    source: str,
    points: Any,
) -> Denominator:
    """Replace the points of denominator ``slug`` with ``points`` (an iterable of (lon, lat,
    value) in WGS84; values below 0 are refused)."""
    denominator, _ = Denominator.objects.update_or_create(
        slug=slug, defaults={"name": name, "unit": unit, "source": source}
    )
    denominator.full_clean()
    denominator.points.all().delete()
    count = sql.copy_denominator_points(denominator_id=denominator.pk, points=points)
    Denominator.objects.filter(pk=denominator.pk).update(loaded_at=timezone.now())
    denominator.refresh_from_db()
    logger.info("denominator %s: %s points", slug, count)
    return denominator


# --- request facts ----------------------------------------------------------------------------

FACTS = "request_facts"
# Changes committed up to this long after a refresh started (by transactions already open
# then) are still picked up by the next one.
FACTS_MARGIN = dt.timedelta(hours=1)


@transaction.atomic
def request_facts_refresh(*, rebuild: bool = False) -> dict[str, int]:
    """Bring ``maps_requestfact`` up to date with the requests: facts for requests without
    any, rewritten for requests changed (``updated_at``) since the last refresh, removed for
    deleted requests; all rewritten when ``rebuild``, or when the city's time zone (months are
    counted in it) or its set of layers (each record holds one boundary per layer) changed.
    Concurrent refreshes wait for each other. Relies on every change to a request (status,
    department, routing, times) moving its ``updated_at``, as Open311's ``updated_datetime``
    requires."""
    started = timezone.now()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    RefreshMark.objects.get_or_create(name=FACTS, defaults={"at": epoch})
    mark = RefreshMark.objects.select_for_update().get(name=FACTS)
    # Each record holds a boundary per layer; a city outline says nothing a report groups by.
    layers = list(
        Layer.objects.exclude(kind=LayerKind.JURISDICTION)
        .order_by("slug")
        .values_list("slug", flat=True)
    )
    rebuild = rebuild or mark.time_zone != settings.TIME_ZONE or mark.layers != layers
    since = mark.at - FACTS_MARGIN if mark.at > epoch else epoch
    initial = Status.objects.filter(is_initial=True).values_list("pk", flat=True).first()
    written, pruned = sql.facts_refresh(
        since=since,
        initial_status_id=initial or -1,
        tz=settings.TIME_ZONE,
        layers=layers,
        rebuild=rebuild,
    )
    mark.at = started
    mark.time_zone = settings.TIME_ZONE
    mark.layers = layers
    mark.save(update_fields=["at", "time_zone", "layers"])
    return {"written": written, "pruned": pruned, "rebuilt": int(rebuild)}


# --- reports ----------------------------------------------------------------------------------


@dataclass
class ReportRuns:
    hotspots: AnalysisRun
    emerging: AnalysisRun | None
    clusters: AnalysisRun | None
    density: AnalysisRun | None

    def pending(self) -> list[AnalysisRun]:
        """Runs still queued or running."""
        runs = [self.hotspots, self.emerging, self.clusters, self.density]
        return [
            r for r in runs if r is not None and r.status in (RunStatus.QUEUED, RunStatus.RUNNING)
        ]

    @staticmethod
    def done(run: AnalysisRun | None) -> AnalysisRun | None:
        """The run if it is done; a failed one (e.g. too few months for a trend) is left out
        of the report."""
        return run if run is not None and run.status == RunStatus.DONE else None


def report_runs(
    *,
    request_filter: RequestFilter,
    hotspot_params: dict | None = None,
    emerging_params: dict | None = None,
    cluster_params: dict | None = None,
    density_params: dict | None = None,
    emerging: bool = True,
    user: Any = None,
    execute: bool = False,
) -> ReportRuns:
    """The runs a planner report shows for a filter, asked for (stored ones reused); with
    ``execute`` the ones not done are computed here and now instead of by the worker (the
    ``hotspots`` command), else they are queued."""

    def ask(kind: str, params: dict | None) -> AnalysisRun:
        run = analysis_request(
            kind=kind, request_filter=request_filter, params=params or {}, user=user,
            defer=not execute,
        )  # fmt: skip
        if execute and run.status != RunStatus.DONE:
            try:
                run = analysis_execute(run_id=run.pk)
            except (analysis.AnalysisError, ValidationError):
                run.refresh_from_db()  # failed: stored on the run, left out of the report
        return run

    return ReportRuns(
        hotspots=ask(AnalysisKind.HOTSPOTS, hotspot_params),
        emerging=ask(AnalysisKind.EMERGING, emerging_params) if emerging else None,
        clusters=ask(AnalysisKind.CLUSTERS, cluster_params),
        density=ask(AnalysisKind.DENSITY, density_params),
    )
