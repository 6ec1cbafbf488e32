"""duplicates_chicago: Chicago's sanitation complaints replayed through the production duplicate
scorer, against the city's own duplicate labels.

The CSV is imported as it would be in production (``importers.requests.import_request_file``
with ``importers/mappings/chicago_sanitation.yaml``, after the Chicago demo layers and city
config), the normal forms of the addresses are filled in, and then every imported request
becomes a probe of its own history in ONE statement: ``geo311.sql_duplicates.CANDIDATES_TABLE``,
the template ``duplicate_candidates`` runs for one probe, with the settings' weights, radius,
window and limit (5). Each request sees only requests made before it: the file has dates
without times, so a day's requests are ordered by Service_Request_Number.

A request's score is its best candidate's score (0 when it has none). Reported:

- ROC-AUC of that score against the labels (``Completed - Dup`` / ``Open - Dup``);
- precision and recall at the "likely" threshold (what ``request_create`` links);
- top-5 recall: labelled duplicates with, among their 5 suggestions, an earlier request within
  50 m and 30 days (the city's own description of its duplicates); ``top5_recall_strict`` also
  asks that suggestion to be still open (closed_at null or on/after the date) at the same
  street address;
- the two rule baselines of the issue, in the same run on the same rows: any earlier request
  within 50 m and 30 days; and one that was also still open, at the same street address.

``python -m bench.duplicates_chicago --fit`` refits the default weights (printed as the
settings dict): a logistic regression on every candidate (all, not just the top 5) with the
features the SQL returns, fitted to the data as recorded and to three altered copies (address
missing; pins scattered by ~10 m; both), so that neither "same street address" nor "same
point" alone carries the score, as it could not in a city whose reports are map pins. The
default run also refits on 2011-2012 and scores 2013-2014 with that fit (``temporal_cv``),
to show how the approach does on requests it was not fitted on.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import time

import numpy as np

from .common import REPO, BenchError, data_path, log, write_result

NAME = "duplicates_chicago"
CSV_PATH = ("chicago", "requests", "sanitation_code_complaints_2011_2014.csv")
MAPPING = REPO / "importers" / "mappings" / "chicago_sanitation.yaml"
DEMO = REPO / "geo311" / "demo" / "chicago"
SOURCE = "bench:chicago_sanitation_2011_2014"
DUP_LABELS = {"Completed - Dup", "Open - Dup"}
GOAL_AUC = 0.97
GOAL_RECALL = 0.95
GOAL_PRECISION = 0.65
GOAL_TOP5 = 0.98
# The baselines and the top-5 "found" test: Chicago's duplicates sit within 50 m and
# 30 days of an earlier report.
NEAR_M = 50.0
NEAR_DAYS = 30.0
# The fit: how far scattered pins are (metres, per coordinate, per report) and how often a copy
# loses its addresses or gets scattered pins.
PIN_SCATTER_M = 10.0
FIT_LIMIT = 1000  # candidates per probe for fitting: all of them in practice
FIT_ROUNDS = 4
L2 = 1.0
CV_SPLIT = "2013-01-01"

# Features in the order of the weights they pair with (see geo311.duplicates.Weights).
FITTED = (
    "distance",
    "days",
    "open",
    "recently_closed",
    "same_address",
    "address_mismatch",
    "description_similarity",
    "nearby",
)

# Rule baselines over the same probes (duplicate_probe) and the same notion of "before".
BASELINES = """
SELECT p.probe_id,
       EXISTS (
           SELECT 1 FROM geo311_servicerequest r
           WHERE ST_DWithin(r.location::geography(Point, 4326), p.geog, %(near_m)s)
             AND r.category_id = p.category_id
             AND r.requested_at >= p.at - make_interval(days => %(near_days)s::int)
             AND r.requested_at <= p.at
             AND (r.requested_at < p.at
                  OR (length(r.public_id), r.public_id) < (length(p.public_id), p.public_id))
       ) AS near,
       EXISTS (
           SELECT 1 FROM geo311_servicerequest r
           WHERE ST_DWithin(r.location::geography(Point, 4326), p.geog, %(near_m)s)
             AND r.category_id = p.category_id
             AND r.requested_at >= p.at - make_interval(days => %(near_days)s::int)
             AND r.requested_at <= p.at
             AND (r.requested_at < p.at
                  OR (length(r.public_id), r.public_id) < (length(p.public_id), p.public_id))
             AND (r.closed_at IS NULL OR r.closed_at >= p.at)
             AND p.address_key <> '' AND r.address_key = p.address_key
       ) AS near_open_same_address
FROM duplicate_probe p
"""


# --- data -------------------------------------------------------------------------------------


def _labels(path) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    """Service_Request_Number -> labelled duplicate, first row of a repeated number (as the
    importer keeps it)."""
    labels: dict[str, bool] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            srn = row["Service_Request_Number"].strip()
            if srn and srn not in labels:
                labels[srn] = row["Status"].strip() in DUP_LABELS
    return labels


def ensure_city() -> dict:
    """The Chicago demo layers and city config (categories, statuses, rules) in the bench
    database, next to whatever else is there; skipped files are not loaded twice."""
    from geo311.config import city_config_load, read_config
    from importers.manifest import import_manifest

    t0 = time.perf_counter()
    reports = import_manifest(DEMO / "layers.json")
    city_config_load(data=read_config(DEMO / "city.yaml"))
    return {
        "layers_loaded": [r.layer for r in reports if not r.unchanged],
        "layers_s": round(time.perf_counter() - t0, 2),
    }


def ensure_chicago(path) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    """Import the Chicago CSV (with the demo layers and city config it needs) unless its rows
    are there already; returns the source name the rows carry and what was done."""
    from django.db import connection

    from importers.requests import import_request_file, read_mapping

    done = ensure_city()
    t0 = time.perf_counter()
    report = import_request_file(path, mapping=read_mapping(MAPPING), source_name=SOURCE)
    done["import"] = {
        "rows": report.rows,
        "imported": report.imported,
        "present": report.present,
        "rejected": dict(report.reasons()),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    log(report.summary().splitlines()[0])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE geo311_servicerequest")
        # Another run may have imported the same file under another name; use whichever holds
        # the rows (the importer refuses to store an id twice).
        cursor.execute(
            "SELECT source, count(*) FROM geo311_servicerequest "
            "WHERE public_id = ANY (%s) GROUP BY source ORDER BY count(*) DESC",
            [list(_labels(path))[:2000]],
        )
        sources = cursor.fetchall()
    if not sources:
        raise BenchError(f"no request of {path.name} is in the bench database after the import")
    return sources[0][0], done


# --- replay -----------------------------------------------------------------------------------


def replay(*, source: str, limit: int, weights=None) -> tuple[list[tuple], dict, float]:  # type: ignore[no-untyped-def]
    """Every request of ``source`` through the production candidate query (top ``limit`` each),
    plus the baselines; (candidate rows, probe info, seconds of the candidate statement)."""
    from django.db import connection, transaction

    from geo311 import sql_duplicates
    from geo311.duplicates import query_params

    with transaction.atomic():
        count = sql_duplicates.probes_from_requests(sources=[source])
        log(f"{count:,} probes; replaying through the candidate query (limit {limit})")
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        t0 = time.perf_counter()
        rows = sql_duplicates.candidates_table(params=query_params(weights=weights, limit=limit))
        seconds = time.perf_counter() - t0
        with connection.cursor() as cursor:
            cursor.execute(BASELINES, {"near_m": NEAR_M, "near_days": NEAR_DAYS})
            baselines = {pid: (near, same) for pid, near, same in cursor.fetchall()}
            cursor.execute("SELECT probe_id, public_id, at FROM duplicate_probe")
            probes = {pid: (public_id, at) for pid, public_id, at in cursor.fetchall()}
    info = {pid: (*probes[pid], *baselines[pid]) for pid in probes}
    return rows, info, seconds


def candidate_table(rows: list[tuple]):  # type: ignore[no-untyped-def]
    import pandas as pd

    from geo311.sql_duplicates import COLUMNS, PROBE_COLUMNS

    df = pd.DataFrame(rows, columns=["probe_id", *PROBE_COLUMNS, *COLUMNS])
    df = df[df["id"].notna()].drop(columns=list(PROBE_COLUMNS)).reset_index(drop=True)
    # Rows of probes without candidates (NULLs) are gone: give the columns their real types.
    floats = ("distance_m", "days", "closed_days", "address_similarity")
    for col in (*floats, "description_similarity", "score"):
        df[col] = df[col].astype(float)
    for col in ("is_open", "address_known", "same_address", "same_category"):
        df[col] = df[col].astype(bool)
    df["nearby"] = df["nearby"].astype(int)
    df["probe_id"] = df["probe_id"].astype(int)
    return df


def features(df) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The fitted features of candidate rows, as the SQL combines them (see CANDIDATES)."""
    closed = df["closed_days"].to_numpy(dtype=float)
    return np.column_stack(
        [
            np.log1p(df["distance_m"].to_numpy(dtype=float) / 10.0),
            np.log1p(df["days"].to_numpy(dtype=float)),
            df["is_open"].to_numpy(dtype=float),
            np.where(np.isnan(closed), 0.0, np.exp(-np.nan_to_num(closed))),
            df["same_address"].to_numpy(dtype=float),
            np.where(
                df["address_known"].to_numpy(dtype=bool),
                1.0 - df["address_similarity"].to_numpy(dtype=float),
                0.0,
            ),
            df["description_similarity"].to_numpy(dtype=float),
            np.log(df["nearby"].to_numpy(dtype=float)),
        ]
    )


# --- metrics ----------------------------------------------------------------------------------


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC with ties counted half."""
    import pandas as pd

    pos = labels.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_recall(predicted: np.ndarray, labels: np.ndarray) -> dict:
    tp = int((predicted & labels).sum())
    flagged = int(predicted.sum())
    return {
        "precision": round(tp / flagged, 4) if flagged else 0.0,
        "recall": round(tp / int(labels.sum()), 4),
        "flagged": flagged,
        "true_positives": tp,
    }


def request_scores(df, probe_ids: np.ndarray, score_col: str = "score") -> np.ndarray:  # type: ignore[no-untyped-def]
    best = df.groupby("probe_id")[score_col].max()
    return best.reindex(probe_ids).fillna(0.0).to_numpy()


def evaluate(df, probe_ids, labels, threshold: float, score_col: str = "score") -> dict:  # type: ignore[no-untyped-def]
    """AUC, precision/recall at ``threshold`` and top-5 recall of candidate rows ``df`` (the top
    5 per probe by ``score_col``)."""
    scores = request_scores(df, probe_ids, score_col)
    out = {"roc_auc": round(roc_auc(scores, labels), 4)}
    out.update(precision_recall(scores >= threshold, labels))
    top = df.sort_values(["probe_id", score_col], ascending=[True, False])
    top = top.groupby("probe_id").head(5)
    near = top[(top["distance_m"] <= NEAR_M) & (top["days"] <= NEAR_DAYS)]
    strict = near[
        (near["is_open"] | (near["closed_days"].fillna(1.0) <= 0.0)) & near["same_address"]
    ]
    dups = set(probe_ids[labels])
    out["top5_recall"] = round(len(dups & set(near["probe_id"])) / len(dups), 4)
    out["top5_recall_strict"] = round(len(dups & set(strict["probe_id"])) / len(dups), 4)
    return out


# --- fitting ----------------------------------------------------------------------------------


def _newton(x: np.ndarray, y: np.ndarray, *, l2: float = L2, iterations: int = 30) -> np.ndarray:
    """L2-regularised logistic regression (bias unpenalised) by Newton's method."""
    xb = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(xb.shape[1])
    penalty = l2 * np.eye(len(w))
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + penalty @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _altered_copies(df, rng):  # type: ignore[no-untyped-def]
    """The rows as recorded, and as three other kinds of city would record them: by a random
    quarter of probes each, without addresses, with pins scattered, or both."""
    import pandas as pd

    probes = df["probe_id"].unique()
    kind = pd.Series(rng.integers(0, 4, len(probes)), index=probes).reindex(df["probe_id"])
    kind = kind.to_numpy()
    out = df.copy()
    no_address = (kind == 1) | (kind == 3)
    out.loc[no_address, ["address_known", "same_address"]] = False
    out.loc[no_address, "address_similarity"] = 0.0
    scatter = (kind == 2) | (kind == 3)
    # Both reports' pins off by N(0, σ) per coordinate: their separation moves by N(0, σ√2).
    n = int(scatter.sum())
    dx = rng.normal(0.0, PIN_SCATTER_M * math.sqrt(2), n)
    dy = rng.normal(0.0, PIN_SCATTER_M * math.sqrt(2), n)
    d = out.loc[scatter, "distance_m"].to_numpy()
    out.loc[scatter, "distance_m"] = np.hypot(d + dx, dy)
    return out


def fit_weights(df, labels_by_probe: dict, *, seed: int = 311) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Fit the weights to every candidate row of ``df`` (multiple-instance: a labelled duplicate
    needs one good candidate, so after a first fit on all rows, positives are the best candidate
    of each duplicate and negatives every candidate of the others). ``description_similarity``
    may not count against a match: if its weight comes out negative it is held at 0."""
    rng = np.random.default_rng(seed)
    data = _altered_copies(df, rng)
    y_all = data["probe_id"].map(labels_by_probe).to_numpy(dtype=float)
    x_all = features(data)
    keep = list(range(len(FITTED)))
    for _attempt in range(2):
        x = x_all[:, keep]
        w = _newton(x, y_all)
        for _ in range(FIT_ROUNDS):
            z = np.column_stack([np.ones(len(x)), x]) @ w
            best = (
                data.assign(z=z, row=np.arange(len(data)))
                .sort_values("z", ascending=False)
                .drop_duplicates("probe_id")
            )
            positives = best["row"][best["probe_id"].map(labels_by_probe)].to_numpy()
            negatives = np.flatnonzero(y_all == 0)
            rows = np.concatenate([positives, negatives])
            w = _newton(x[rows], y_all[rows])
        fitted = dict(zip(["bias", *(FITTED[i] for i in keep)], w.tolist(), strict=True))
        desc = FITTED.index("description_similarity")
        if desc in keep and fitted["description_similarity"] < 0:
            log(
                f"description_similarity fitted at {fitted['description_similarity']:.2f}: "
                "held at 0 and refitted"
            )
            keep.remove(desc)
            continue
        break
    weights = {name: round(fitted.get(name, 0.0), 2) for name in ("bias", *FITTED)}
    return weights


def score_with(df, weights: dict[str, float], other_category: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The SQL's score in numpy (for refits, and to check the SQL against)."""
    w = np.array([weights[name] for name in FITTED])
    z = weights["bias"] + features(df) @ w + other_category * (~df["same_category"].to_numpy())
    return 1.0 / (1.0 + np.exp(-z))


# --- run --------------------------------------------------------------------------------------


def run(*, fit: bool = False) -> dict:
    from django.conf import settings

    from geo311.duplicates import Weights, policy_for
    from geo311.models import ServiceCategory

    path = data_path(*CSV_PATH)
    source, loaded = ensure_chicago(path)
    labels_by_id = _labels(path)
    category = ServiceCategory.objects.get(service_code="SAN_CODE")
    threshold = policy_for(category=category).likely_score

    rows, info, seconds = replay(source=source, limit=5)
    probe_ids = np.array(sorted(info))
    public = [info[p][0] for p in probe_ids]
    missing = [pid for pid in public if pid not in labels_by_id]
    if missing:
        raise BenchError(f"{len(missing)} replayed requests are not in the CSV, e.g. {missing[:3]}")
    labels = np.array([labels_by_id[pid] for pid in public], dtype=bool)
    df = candidate_table(rows)
    ours = evaluate(df, probe_ids, labels, threshold)
    log(f"ours: {ours}")

    near = np.array([info[p][2] for p in probe_ids], dtype=bool)
    near_same = np.array([info[p][3] for p in probe_ids], dtype=bool)
    baselines = {
        "any_within_50m_30d": {
            "roc_auc": round(roc_auc(near.astype(float), labels), 4),
            **precision_recall(near, labels),
        },
        "open_same_address_within_50m_30d": {
            "roc_auc": round(roc_auc(near_same.astype(float), labels), 4),
            **precision_recall(near_same, labels),
        },
    }
    log(f"baselines: {baselines}")

    # All candidates (not just 5): for the fit and the temporal check, with the same SQL.
    log("all candidates per probe, for the refit check")
    all_rows, _info, all_seconds = replay(source=source, limit=FIT_LIMIT)
    every = candidate_table(all_rows)
    weights = Weights.from_settings()
    sql_vs_numpy = float(
        np.abs(
            score_with(every, dataclasses.asdict(weights), weights.other_category) - every["score"]
        ).max()
    )
    labels_by_probe = dict(zip(probe_ids.tolist(), labels.tolist(), strict=True))
    at_by_probe = {p: info[p][1] for p in probe_ids}
    split = np.datetime64(CV_SPLIT)
    probe_at = np.array([np.datetime64(at_by_probe[p].replace(tzinfo=None)) for p in probe_ids])
    train = set(probe_ids[probe_at < split].tolist())
    test_mask = probe_at >= split
    cv_weights = fit_weights(every[every["probe_id"].isin(train)], labels_by_probe)
    every["cv_score"] = score_with(every, cv_weights, weights.other_category)
    test_rows = every[~every["probe_id"].isin(train)]
    temporal_cv = {
        "train": f"requests before {CV_SPLIT} ({len(train):,})",
        "test": f"requests from {CV_SPLIT} ({int(test_mask.sum()):,})",
        "weights": cv_weights,
        "refit": evaluate(
            test_rows, probe_ids[test_mask], labels[test_mask], threshold, "cv_score"
        ),
        "defaults_on_test": evaluate(test_rows, probe_ids[test_mask], labels[test_mask], threshold),
    }
    log(f"temporal check: {temporal_cv}")
    refit = None
    if fit:
        refit = fit_weights(every, labels_by_probe)
        every["refit_score"] = score_with(every, refit, weights.other_category)
        print(
            "GEO311_DUPLICATE_WEIGHTS = "
            + repr({**refit, "other_category": weights.other_category})
        )
        log(f"refit on all: {evaluate(every, probe_ids, labels, threshold, 'refit_score')}")

    goal_met = (
        ours["roc_auc"] >= GOAL_AUC
        and ours["recall"] >= GOAL_RECALL
        and ours["precision"] >= GOAL_PRECISION
        and ours["top5_recall"] >= GOAL_TOP5
    )
    details = {
        "precision": ours["precision"],
        "recall": ours["recall"],
        "top5_recall": ours["top5_recall"],
        "top5_recall_strict": ours["top5_recall_strict"],
        "likely_threshold": threshold,
        "flagged": ours["flagged"],
        "requests": int(len(probe_ids)),
        "labelled_duplicates": int(labels.sum()),
        "requests_with_candidates": int(df["probe_id"].nunique()),
        "baselines": baselines,
        "replay_seconds": round(seconds, 2),
        "replay_probes_per_s": round(len(probe_ids) / seconds),
        "all_candidates": {"rows": int(len(every)), "seconds": round(all_seconds, 2)},
        "sql_vs_numpy_score_max_abs_diff": sql_vs_numpy,
        "weights": dataclasses.asdict(weights),
        "radius_m": settings.GEO311_DUPLICATE_RADIUS_M,
        "window_days": settings.GEO311_DUPLICATE_WINDOW_DAYS,
        "recently_closed_days": settings.GEO311_DUPLICATE_RECENTLY_CLOSED_DAYS,
        "temporal_cv": temporal_cv,
        "refit_weights": refit,
        "source": source,
        "data_load": loaded,
        "goal_met": goal_met,
        "notes": [
            "score = the best candidate's score from geo311.sql_duplicates (the production "
            "query, run for every request at once); 0 without candidates",
            "top5_recall: a labelled duplicate has, among its 5 suggestions, an earlier "
            "request within 50 m and 30 days; _strict: that one still open, same address",
            "baselines use 'still open' = closed_at null or on/after the request's date "
            "(the file has dates only), which reproduces the issue's figures",
            f"{loaded['import'].get('rejected')} rows were not imported (no coordinates, "
            "repeated ids, outside the city limits) and are not scored",
        ],
    }
    return write_result(
        name=NAME,
        value=ours["roc_auc"],
        unit="ROC-AUC",
        baseline="rule: earlier request within 50 m and 30 days, still open, same address",
        baseline_value=baselines["open_same_address_within_50m_30d"]["roc_auc"],
        goal=(
            f"ROC-AUC ≥ {GOAL_AUC}; at the likely threshold recall ≥ {GOAL_RECALL} with "
            f"precision ≥ {GOAL_PRECISION}; top-5 recall ≥ {GOAL_TOP5}"
        ),
        details=details,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.duplicates_chicago")
    parser.add_argument(
        "--fit", action="store_true", help="also refit the default weights and print them"
    )
    args = parser.parse_args(argv)
    from .common import setup

    try:
        setup()
        run(fit=args.fit)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
