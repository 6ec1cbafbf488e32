"""Spatial statistics on binned requests: weights, Getis-Ord Gi*, false-discovery-rate classes,
emerging hot spots (Gi* per time slice + Mann-Kendall), kernel density.

Pure computation over numpy arrays, no database: ``maps.services`` bins requests in PostGIS
(``maps.sql``) and hands the cells here. Coordinates are metres in a projected CRS (the city's
UTM zone, ``utm_srid``), never degrees.

Gi* (Getis & Ord 1992; Ord & Getis 1995), as ArcGIS's Hot Spot Analysis computes it: binary
weights (a fixed distance band or the k nearest cells), each cell its own neighbour, no row
standardisation. For cell i with neighbourhood weights w_ij (w_ii = 1), n cells, mean x̄ and
S = sqrt(Σx²/n − x̄²)::

    z_i = (Σ_j w_ij x_j − x̄ Σ_j w_ij) / (S sqrt((n Σ_j w_ij² − (Σ_j w_ij)²) / (n − 1)))

which is what PySAL's ``esda.G_Local(y, w, transform="B", star=True)`` returns as ``Zs`` for the
same binary weights (tests/maps/test_analysis.py checks it to 1e-6). p-values are two-sided
(``2 · Φ(−|z|)``; esda's ``p_norm`` is the one-sided half of it). Significance is corrected for
the number of cells tested with Benjamini-Hochberg, as ArcGIS's Optimized Hot Spot Analysis does:
a cell is a hot (z > 0) or cold (z < 0) spot at 99/95/90% confidence when its BH-adjusted p-value
is at most 0.01/0.05/0.10.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyproj import CRS
from scipy import sparse, stats
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

SQRT3 = float(np.sqrt(3.0))
# (confidence, largest adjusted p) from the strictest down: the Gi_Bin of ArcGIS.
LEVELS = ((3, 0.01), (2, 0.05), (1, 0.10))
CONFIDENCE = {3: 99, 2: 95, 1: 90}


class AnalysisError(ValueError):
    """The analysis cannot run on this input; the message says what to change."""


def utm_srid(*, lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone of a point: the rule ``boundaries.sql`` uses to simplify
    layers in metres (326zz north, 327zz south)."""
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def check_metric_srid(srid: int) -> None:
    """Refuse a CRS whose unit is not the metre (cells and bands are given in metres)."""
    crs = CRS.from_epsg(srid)
    if not crs.is_projected:
        raise AnalysisError(f"EPSG:{srid} is not a projected CRS; analyses measure in metres")
    units = {axis.unit_name for axis in crs.axis_info}
    if units != {"metre"}:
        raise AnalysisError(f"EPSG:{srid} measures in {', '.join(sorted(units))}, not metres")


# --- grid ------------------------------------------------------------------------------------


def hex_centres(i: np.ndarray, j: np.ndarray, *, size_m: float) -> np.ndarray:
    """Centres (x, y) in metres of PostGIS ``ST_HexagonGrid``/``ST_Hexagon`` cells (i, j) of edge
    ``size_m``: flat-topped, columns 1.5 edges apart, odd columns half a row up."""
    i = np.asarray(i, dtype=float)
    j = np.asarray(j, dtype=float)
    x = 1.5 * size_m * i
    y = SQRT3 * size_m * (j + 0.5 * np.mod(i, 2.0))
    return np.column_stack([x, y])


def hex_index(x: np.ndarray, y: np.ndarray, *, size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The (i, j) of the ``hex_centres`` cell holding each point (metres): axial coordinates
    rounded in cube coordinates, then PostGIS's column offset. The arithmetic of
    ``maps.sql.HEX_INDEX``, number for number (``rint`` rounds as PostgreSQL's ``round`` of a
    double does), so both give each point the same cell."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    q = x / (1.5 * size_m)
    r = y / (np.sqrt(3.0) * size_m) - x / (3.0 * size_m)
    rq, rr, rs = np.rint(q), np.rint(r), np.rint(-q - r)
    dq, dr, ds = np.abs(rq - q), np.abs(rr - r), np.abs(rs + q + r)
    q_wins = (dq > dr) & (dq > ds)
    i = np.where(q_wins, -rr - rs, rq)
    r_final = np.where(q_wins, rr, np.where(dr > ds, -rq - rs, rr))
    return i.astype(np.int64), (r_final + np.floor(i / 2)).astype(np.int64)


# --- weights ---------------------------------------------------------------------------------


def distance_band_weights(xy: np.ndarray, *, band_m: float) -> sparse.csr_matrix:
    """Binary weights: 1 between cells whose centres are at most ``band_m`` apart, 0 on the
    diagonal (Gi* adds each cell itself)."""
    if band_m <= 0:
        raise AnalysisError("the distance band must be a positive number of metres")
    n = len(xy)
    pairs = cKDTree(xy).query_pairs(band_m, output_type="ndarray")
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    data = np.ones(len(rows), dtype=float)
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, n))


def knn_weights(xy: np.ndarray, *, k: int) -> sparse.csr_matrix:
    """Binary weights: 1 from each cell to its ``k`` nearest other cells (not symmetric)."""
    n = len(xy)
    if k < 1:
        raise AnalysisError("k must be at least 1")
    if n <= k:
        raise AnalysisError(f"k={k} nearest neighbours need more than {k} cells; there are {n}")
    _, idx = cKDTree(xy).query(xy, k=k + 1)
    rows = np.repeat(np.arange(n), k + 1)
    cols = idx.ravel()
    keep = rows != cols
    # Cells at the same place (not in a grid) could push a cell's self out of its k+1 list.
    rows, cols = rows[keep], cols[keep]
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return _first_k_per_row(matrix, k)


def _first_k_per_row(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    counts = np.diff(matrix.indptr)
    if (counts <= k).all():
        return matrix
    lil = matrix.tolil()
    for row in np.nonzero(counts > k)[0]:
        lil.rows[row] = lil.rows[row][:k]
        lil.data[row] = lil.data[row][:k]
    return lil.tocsr()


# --- Gi* -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GiStar:
    z: np.ndarray
    p: np.ndarray  # two-sided
    q: np.ndarray  # Benjamini-Hochberg adjusted p
    gi_bin: np.ndarray  # -3..3
    neighbours: np.ndarray  # neighbours of each cell, itself not counted

    def summary(self) -> dict:
        bins, counts = np.unique(self.gi_bin, return_counts=True)
        return {
            "cells": int(len(self.z)),
            "by_bin": {int(b): int(c) for b, c in zip(bins, counts, strict=True)},
            "hot": int((self.gi_bin > 0).sum()),
            "cold": int((self.gi_bin < 0).sum()),
            "islands": int((self.neighbours == 0).sum()),
            "mean_neighbours": round(float(self.neighbours.mean()), 2) if len(self.z) else 0.0,
        }


def gi_star_z(values: np.ndarray, weights: sparse.csr_matrix) -> np.ndarray:
    """Gi* z-scores of ``values`` with binary ``weights`` (no diagonal; the cell itself is added
    with weight 1). A constant variable has no z-score: every cell gets 0."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 3:
        raise AnalysisError(f"Gi* needs at least 3 cells; there are {n}")
    w = (weights + sparse.identity(n, format="csr")).tocsr()
    w_sum = np.asarray(w.sum(axis=1)).ravel()
    w_sq = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    mean = x.mean()
    s = np.sqrt(max((x * x).mean() - mean * mean, 0.0))
    if s == 0.0:
        return np.zeros(n)
    numerator = w @ x - mean * w_sum
    denominator = s * np.sqrt((n * w_sq - w_sum * w_sum) / (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(denominator > 0, numerator / denominator, 0.0)
    return z


def two_sided_p(z: np.ndarray) -> np.ndarray:
    return 2.0 * stats.norm.sf(np.abs(z))


def fdr_bins(z: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(BH-adjusted p, Gi_Bin): +3/+2/+1 hot at 99/95/90% after the correction, negative for
    cold, 0 when not significant at 90%."""
    q = stats.false_discovery_control(p, method="bh") if len(p) else np.asarray(p)
    gi_bin = np.zeros(len(p), dtype=int)
    for level, alpha in reversed(LEVELS):  # weakest first, so the strictest level wins
        gi_bin[q <= alpha] = level
    gi_bin *= np.sign(z).astype(int)
    return q, gi_bin


def gi_star(values: np.ndarray, weights: sparse.csr_matrix) -> GiStar:
    z = gi_star_z(values, weights)
    p = two_sided_p(z)
    q, gi_bin = fdr_bins(z, p)
    neighbours = np.diff(weights.tocsr().indptr)
    return GiStar(z=z, p=p, q=q, gi_bin=gi_bin, neighbours=neighbours)


def hotspot_class(gi_bin: int) -> str:
    """``hot_99`` … ``cold_90`` or ``not_significant``."""
    if gi_bin == 0:
        return "not_significant"
    return f"{'hot' if gi_bin > 0 else 'cold'}_{CONFIDENCE[abs(gi_bin)]}"


# --- emerging hot spots ----------------------------------------------------------------------

PATTERNS = (
    "new",
    "consecutive",
    "intensifying",
    "persistent",
    "diminishing",
    "sporadic",
    "oscillating",
    "historical",
)


@dataclass(frozen=True)
class Emerging:
    z: np.ndarray  # (cells, slices)
    gi_bin: np.ndarray  # (cells, slices)
    trend_tau: np.ndarray  # Kendall's tau of z against time, per cell
    trend_z: np.ndarray
    trend_p: np.ndarray
    pattern: list[str]  # e.g. "intensifying_hot", "new_cold", "no_pattern"

    def summary(self) -> dict:
        names, counts = np.unique(np.asarray(self.pattern), return_counts=True)
        return {
            "cells": int(self.z.shape[0]),
            "slices": int(self.z.shape[1]),
            "patterns": {str(n): int(c) for n, c in zip(names, counts, strict=True)},
        }


def mann_kendall(series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mann-Kendall trend test of each row of ``series`` (cells × time): (tau, z, p), two-sided,
    normal approximation with the tie correction of the variance (scipy's Kendall tau-b against
    time, which has no ties, is exactly that test). A constant row has no trend: tau 0, p 1."""
    series = np.asarray(series, dtype=float)
    cells, slices = series.shape
    if slices < 3:
        raise AnalysisError(f"a trend needs at least 3 time slices; there are {slices}")
    time = np.broadcast_to(np.arange(slices, dtype=float), series.shape)
    result = stats.kendalltau(time, series, method="asymptotic", axis=1)
    tau = np.nan_to_num(np.asarray(result.statistic, dtype=float), nan=0.0)
    p = np.nan_to_num(np.asarray(result.pvalue, dtype=float), nan=1.0)
    z = np.sign(tau) * stats.norm.isf(p / 2.0)
    return tau, z, p


def emerging_hot_spots(
    counts: np.ndarray,
    weights: sparse.csr_matrix,
    *,
    trend_alpha: float = 0.05,
    persistence: float = 0.9,
) -> Emerging:
    """Gi* of each time slice (columns of ``counts``, cells × slices; the same weights for
    every slice, FDR per slice), Mann-Kendall trend of each cell's z-scores, and the pattern of
    each cell in ArcGIS's Emerging Hot Spot Analysis terms (see ``pattern_of``)."""
    counts = np.asarray(counts, dtype=float)
    cells, slices = counts.shape
    z = np.zeros((cells, slices))
    bins = np.zeros((cells, slices), dtype=int)
    for t in range(slices):
        result = gi_star(counts[:, t], weights)
        z[:, t], bins[:, t] = result.z, result.gi_bin
    tau, trend_z, trend_p = mann_kendall(z)
    trend = np.where(trend_p <= trend_alpha, np.sign(tau), 0).astype(int)
    patterns = [
        pattern_of(bins[c], trend=int(trend[c]), persistence=persistence) for c in range(cells)
    ]
    return Emerging(
        z=z, gi_bin=bins, trend_tau=tau, trend_z=trend_z, trend_p=trend_p, pattern=patterns
    )


def pattern_of(bins: Sequence[int], *, trend: int, persistence: float = 0.9) -> str:
    """The emerging hot/cold spot pattern of one cell from its Gi_Bin per slice (oldest first)
    and the sign of its significant z-score trend (+1 up, -1 down, 0 none).

    As ArcGIS defines them, for hot spots (cold spots mirror them, with the trend reversed):

    - new: hot in the last slice and never before;
    - consecutive: one uninterrupted run of at least two hot slices ending with the last, never
      hot before that run, hot in less than 90% of the slices;
    - intensifying / persistent / diminishing: hot in at least 90% of the slices including the
      last, with a significant upward / no / significant downward trend in the z-scores;
    - sporadic: hot in the last slice, on and off before, hot in less than 90% of the slices and
      never cold;
    - oscillating: hot in the last slice, cold in some earlier one, hot in less than 90%;
    - historical: not hot in the last slice but hot in at least 90% of them.

    The last slice decides the side: a cell cold now is read as a cold spot whatever its past;
    a cell that was ever a cold spot before is oscillating, even in its first hot slice (the
    swing is what a planner needs to see).
    """
    levels = np.asarray(bins)
    slices = len(levels)
    sign = int(np.sign(levels[-1]))
    if sign == 0:
        # Not significant now: only a long history makes a pattern.
        for side, s in (("hot", 1), ("cold", -1)):
            if (levels * s > 0).sum() / slices >= persistence:
                return f"historical_{side}"
        return "no_pattern"
    side = "hot" if sign > 0 else "cold"
    mine: np.ndarray = levels * sign > 0
    other: np.ndarray = levels * sign < 0
    if mine.sum() / slices >= persistence:
        name = {1: "intensifying", 0: "persistent", -1: "diminishing"}[trend * sign]
        return f"{name}_{side}"
    if other[:-1].any():
        return f"oscillating_{side}"
    if mine.sum() == 1:
        return f"new_{side}"
    run = _final_run(mine)
    if run >= 2 and not mine[: slices - run].any():
        return f"consecutive_{side}"
    return f"sporadic_{side}"


def _final_run(flags: np.ndarray) -> int:
    """Length of the run of True at the end of ``flags``."""
    run = 0
    for flag in flags[::-1]:
        if not flag:
            break
        run += 1
    return run


# --- kernel density --------------------------------------------------------------------------


@dataclass(frozen=True)
class DensityGrid:
    """Requests per km² on a regular grid in the run's projected CRS: ``values[row, col]`` is
    the cell whose lower-left corner is (x0 + col·cell_m, y0 + row·cell_m)."""

    x0: float
    y0: float
    cell_m: float
    values: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape


def kernel_density(
    cell_counts: np.ndarray,
    *,
    x0: float,
    y0: float,
    cell_m: float,
    bandwidth_m: float,
) -> DensityGrid:
    """A Gaussian kernel density surface (standard deviation ``bandwidth_m``) from requests
    already counted on a fine grid of ``cell_m`` squares: binned kernel density estimation, the
    convolution of the counts with the kernel (scipy.ndimage), in requests per km². The
    binning moves each point by at most half a cell, so keep ``cell_m`` below bandwidth / 4."""
    if bandwidth_m <= 0 or cell_m <= 0:
        raise AnalysisError("bandwidth and cell size must be positive numbers of metres")
    smoothed = gaussian_filter(
        np.asarray(cell_counts, dtype=float), sigma=bandwidth_m / cell_m, mode="constant"
    )
    per_km2 = smoothed / (cell_m * cell_m / 1e6)
    return DensityGrid(x0=x0, y0=y0, cell_m=cell_m, values=per_km2)


# --- grouped percentiles ---------------------------------------------------------------------


@dataclass(frozen=True)
class ValueOrder:
    """The rows of a variable that have a value (not NaN), in increasing order of it."""

    index: np.ndarray
    values: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> "ValueOrder":
        values = np.asarray(values, dtype=float)
        index = np.flatnonzero(~np.isnan(values))
        index = index[np.argsort(values[index])]
        return cls(index=index, values=values[index])


def grouped_percentiles(
    values: "np.ndarray | ValueOrder",
    groups: np.ndarray,
    n_groups: int,
    quantiles: Sequence[float],
) -> np.ndarray:
    """Percentiles of ``values`` within each group (``groups``: codes 0..n_groups-1), as
    PostgreSQL's ``percentile_cont`` and numpy's "linear" method compute them (interpolating
    between the two nearest ranks). NaN values are ignored; an empty group gets NaN.
    Returns an array (n_groups, len(quantiles)). Pass a ``ValueOrder`` of the values to sort
    them once for many groupings.

    One sort by value, then a stable sort by group (a radix sort for codes below 2**16),
    instead of a sort per group: pandas' ``groupby().quantile()`` gives the same numbers (the
    tests check it) but took 0.25-0.7 s per grouping on 1.2M rows; a report needs a dozen.
    """
    order = values if isinstance(values, ValueOrder) else ValueOrder.of(values)
    group_of = np.asarray(groups)[order.index]
    if n_groups < 2**16:
        group_of = group_of.astype(np.uint16)
    sorted_values = order.values[np.argsort(group_of, kind="stable")]
    counts = np.bincount(group_of, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((n_groups, len(quantiles)), np.nan)
    has = counts > 0
    first, size = starts[has], counts[has]
    for column, q in enumerate(quantiles):
        position = first + q * (size - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, first + size - 1)
        fraction = position - low
        out[has, column] = (
            sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction
        )
    return out
