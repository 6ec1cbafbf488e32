"""dbscan_nyc: DBSCAN clusters of the 855,552 NYC tax-lot points (as requests of 2020, the data
of ``hotspots_gi_nyc``), in metres, as the analysis job computes and stores them.

- value: ``maps.services`` cluster run (ST_ClusterDBSCAN in UTM 18N, then each cluster's
  members, hull, centre and time span stored in maps_requestcluster), median of RUNS runs.
- baseline: scikit-learn's DBSCAN (ball tree) on the same points in the same CRS, fit only
  (the points already read and projected; reading them is timed apart).
- also: ST_ClusterDBSCAN alone (labels only), and whether both agree: the same requests
  clustered and the same number of clusters (a border point within eps of two clusters may
  join either).
"""

from __future__ import annotations

import os
import time

import numpy as np

from .common import BenchError, log, median, write_result
from .hotspots_gi_nyc import SRID, _filter, ensure_lots

NAME = "dbscan_nyc"
EPS_M = 25.0
MIN_POINTS = 5
RUNS = 3


def run_ours() -> tuple[float, float, object]:
    from maps import services

    c0, t0 = time.process_time(), time.perf_counter()
    run = services.analysis_request(
        kind="clusters",
        request_filter=_filter(),
        params={"eps_m": EPS_M, "min_points": MIN_POINTS},
        refresh=True,
        defer=False,
    )
    run = services.analysis_execute(run_id=run.pk)
    return time.perf_counter() - t0, time.process_time() - c0, run


def labels_only() -> tuple[float, list]:
    from maps import sql

    t0 = time.perf_counter()
    rows = sql.dbscan_labels(
        filter_params=_filter().params(), srid=SRID, eps_m=EPS_M, min_points=MIN_POINTS
    )
    return time.perf_counter() - t0, rows


def points_in_metres() -> tuple[float, np.ndarray, np.ndarray]:
    from pyproj import Transformer

    from geo311.models import ServiceRequest

    t0 = time.perf_counter()
    p = _filter().params()
    rows = list(
        ServiceRequest.objects.filter(requested_at__gte=p["start"], requested_at__lt=p["end"])
        .order_by("pk")
        .values_list("pk", "location")
    )
    ids = np.array([pk for pk, _ in rows])
    x, y = Transformer.from_crs(4326, SRID, always_xy=True).transform(
        [loc.x for _, loc in rows], [loc.y for _, loc in rows]
    )
    return time.perf_counter() - t0, ids, np.column_stack([x, y])


def run_sklearn(xy: np.ndarray) -> tuple[float, float, np.ndarray]:
    from sklearn.cluster import DBSCAN

    c0, t0 = time.process_time(), time.perf_counter()
    labels = DBSCAN(eps=EPS_M, min_samples=MIN_POINTS, algorithm="ball_tree").fit_predict(xy)
    return time.perf_counter() - t0, time.process_time() - c0, labels


def run() -> dict:
    from django.conf import settings

    from .nyc import POINTS_TOTAL

    loaded = ensure_lots()
    settings.GEO311_ANALYSIS_SRID = SRID
    read_s, ids, xy = points_in_metres()
    if len(ids) != POINTS_TOTAL:
        raise BenchError(f"{len(ids)} lot requests in 2020, not {POINTS_TOTAL}")
    log(f"{len(ids):,} points read and projected in {read_s:.1f} s; warming up")
    run_ours()
    ours_s, ours_cpu, theirs_s, theirs_cpu, loads = [], [], [], [], []
    last, labels = None, None
    for n in range(RUNS):
        loads.append(round(os.getloadavg()[0], 2))
        wall, cpu, last = run_ours()
        ours_s.append(wall)
        ours_cpu.append(cpu)
        wall, cpu, labels = run_sklearn(xy)
        theirs_s.append(wall)
        theirs_cpu.append(cpu)
        log(f"run {n + 1}: ours {ours_s[-1]:.2f} s, scikit-learn {theirs_s[-1]:.2f} s")
    bare_s, bare = labels_only()
    clustered_ours = {pk for c in last.clusters.only("request_ids") for pk in c.request_ids}
    clustered_sklearn = set(ids[labels >= 0].tolist())
    agreement = {
        "clusters_ours": last.result["clusters"],
        "clusters_sklearn": len(set(labels.tolist()) - {-1}),
        "clustered_ours": len(clustered_ours),
        "clustered_sklearn": len(clustered_sklearn),
        "clustered_by_one_only": len(clustered_ours ^ clustered_sklearn),
        "clusters_labels_only": len({label for _, label in bare if label is not None}),
    }
    log(f"agreement: {agreement}")
    value = round(median(ours_s), 3)
    details = {
        **agreement,
        "points": len(ids),
        "eps_m": EPS_M,
        "min_points": MIN_POINTS,
        "srid": SRID,
        "largest_cluster": last.result["largest"],
        "runs_s": [round(x, 3) for x in ours_s],
        "client_cpu_s": [round(x, 3) for x in ours_cpu],
        "labels_only_s": round(bare_s, 3),
        "sklearn_fit_runs_s": [round(x, 3) for x in theirs_s],
        "sklearn_fit_cpu_s": [round(x, 3) for x in theirs_cpu],
        "read_and_project_s": round(read_s, 3),
        "loadavg_1min_before_runs": loads,
        "data_load": loaded,
        "notes": [
            "value = the cluster run as the job runs it: ST_ClusterDBSCAN and the storing "
            "of every cluster (members, hull, centre, span); labels_only_s is the window "
            "function alone",
            "baseline = scikit-learn DBSCAN fit on the points already in memory and in "
            "metres (reading and projecting them: read_and_project_s)",
            "client_cpu_s is this process; PostGIS works in its own",
        ],
    }
    return write_result(
        name=NAME,
        value=value,
        unit="s",
        baseline="scikit-learn DBSCAN (ball tree) fit on the same points in the same CRS",
        baseline_value=round(median(theirs_s), 3),
        goal="the same requests clustered as scikit-learn, into as many clusters; time reported",
        details=details,
    )
