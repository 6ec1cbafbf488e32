"""Gi* against PySAL's esda on real cells, FDR classes against esda.fdr, emerging hot spots on
data built to have known trends, Mann-Kendall, grouped percentiles, kernel density."""

import esda
import libpysal
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from maps import analysis, selectors, sql
from maps.filters import RequestFilter

# Marked for the database although the tests read it only through module fixtures: pytest-django
# runs unmarked tests after the transactional ones, whose flush (tests/maps/test_worker.py)
# empties the maps tests' committed city when the package runs alone.
pytestmark = [
    pytest.mark.django_db,
    # Real cells include a few islands (a park, the airport's edge): libpysal says so.
    pytest.mark.filterwarnings("ignore:The weights matrix is not fully connected"),
]


# --- Gi* = esda.G_Local(star=True) on real Chicago cells ------------------------------------


@pytest.fixture(scope="module")
def real_cells(chicago_requests, django_db_blocker):  # type: ignore[no-untyped-def]
    """250 m hexagons of the imported Chicago complaints, 2011-2014, with the empty hexagons
    inside the city outline: (counts, centres in metres, srid)."""
    with django_db_blocker.unblock():
        srid = selectors.analysis_srid()
        params = RequestFilter(categories=("SAN_CODE",)).params()
        i, j, n = sql.hex_counts(filter_params=params, srid=srid, size_m=250.0)
        wi, wj = sql.hex_cells_within(
            version_ids=selectors.jurisdiction_version_ids(), srid=srid, size_m=250.0
        )
    frame = pd.DataFrame({"i": i.astype(int), "j": j.astype(int), "n": n})
    frame = frame.merge(pd.DataFrame({"i": wi.astype(int), "j": wj.astype(int)}), how="outer")
    frame = frame.fillna({"n": 0}).sort_values(["i", "j"])
    xy = analysis.hex_centres(frame["i"].to_numpy(), frame["j"].to_numpy(), size_m=250.0)
    return frame["n"].to_numpy(dtype=float), xy, srid


def test_the_real_cells_are_metres_in_chicagos_utm_zone(real_cells):
    counts, xy, srid = real_cells
    assert srid == 32616  # UTM 16N: Chicago, from the city outline's centre
    assert counts.sum() > 8_000
    assert (counts == 0).sum() > 100  # empty hexagons inside the city are analysed too
    nearest = np.sort(np.hypot(*(xy[1:] - xy[:-1]).T))[0]
    assert nearest == pytest.approx(250.0 * np.sqrt(3.0))  # neighbouring hexagon centres


def test_distance_band_weights_are_libpysals(real_cells):
    _, xy, _ = real_cells
    ours = analysis.distance_band_weights(xy, band_m=875.0)
    theirs = libpysal.weights.DistanceBand(xy, threshold=875.0, binary=True, silence_warnings=True)
    assert (ours != theirs.sparse).nnz == 0
    assert 10 < ours.sum(axis=1).mean() <= 18  # up to two rings of neighbours


def test_gi_star_equals_esda_g_local_star_with_a_distance_band(real_cells):
    counts, xy, _ = real_cells
    weights = analysis.distance_band_weights(xy, band_m=875.0)
    ours = analysis.gi_star(counts, weights)
    w = libpysal.weights.DistanceBand(xy, threshold=875.0, binary=True, silence_warnings=True)
    theirs = esda.G_Local(counts, w, transform="B", star=True, permutations=0)
    assert np.abs(ours.z - theirs.Zs).max() < 1e-6
    # esda's p_norm is one-sided; ours are two-sided, as ArcGIS reports them.
    assert np.abs(ours.p - 2 * theirs.p_norm).max() < 1e-9
    assert (ours.gi_bin > 0).sum() > 100
    assert (ours.gi_bin < 0).sum() > 100


def test_gi_star_equals_esda_with_the_same_k_nearest_neighbour_weights(real_cells):
    counts, xy, _ = real_cells
    weights = analysis.knn_weights(xy, k=8)
    assert (np.diff(weights.indptr) == 8).all()
    ours = analysis.gi_star(counts, weights)
    w = libpysal.weights.WSP(weights).to_W(silence_warnings=True)
    theirs = esda.G_Local(counts, w, transform="B", star=True, permutations=0)
    assert np.abs(ours.z - theirs.Zs).max() < 1e-6


def test_gi_star_of_rates_equals_esda(real_cells):
    counts, xy, _ = real_cells
    rng = np.random.default_rng(7)
    rates = counts / rng.uniform(50, 500, len(counts))  # requests per resident, say
    weights = analysis.distance_band_weights(xy, band_m=600.0)
    w = libpysal.weights.DistanceBand(xy, threshold=600.0, binary=True, silence_warnings=True)
    theirs = esda.G_Local(rates, w, transform="B", star=True, permutations=0)
    assert np.abs(analysis.gi_star(rates, weights).z - theirs.Zs).max() < 1e-6


def test_fdr_classes_are_those_of_esdas_fdr_thresholds(real_cells):
    counts, xy, _ = real_cells
    result = analysis.gi_star(counts, analysis.distance_band_weights(xy, band_m=875.0))
    for level, alpha in analysis.LEVELS:
        threshold = esda.fdr(result.p, alpha)
        significant = np.abs(result.gi_bin) >= level
        # esda.fdr returns the Benjamini-Hochberg cut-off: p-values strictly below it.
        assert (significant == (result.p < threshold)).all(), alpha
    # The correction matters here: without it, more cells would pass at 95%.
    assert (result.p <= 0.05).sum() > (np.abs(result.gi_bin) >= 2).sum()
    assert result.q.min() >= result.p.min()


def test_gi_star_of_a_constant_variable_is_zero_everywhere():
    xy = analysis.hex_centres(np.arange(10), np.zeros(10), size_m=100.0)
    result = analysis.gi_star(np.full(10, 3.0), analysis.distance_band_weights(xy, band_m=200))
    assert (result.z == 0).all()
    assert (result.gi_bin == 0).all()


def test_too_few_cells_and_bad_parameters_are_refused():
    xy = np.array([[0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(analysis.AnalysisError, match="at least 3 cells"):
        analysis.gi_star(np.array([1.0, 2.0]), sparse.csr_matrix((2, 2)))
    with pytest.raises(analysis.AnalysisError, match="need more than 4 cells"):
        analysis.knn_weights(xy, k=4)
    with pytest.raises(analysis.AnalysisError, match="positive number of metres"):
        analysis.distance_band_weights(xy, band_m=0)
    with pytest.raises(analysis.AnalysisError, match="measures in US survey foot"):
        analysis.check_metric_srid(3435)  # Illinois East, in feet
    with pytest.raises(analysis.AnalysisError, match="not a projected CRS"):
        analysis.check_metric_srid(4326)


def test_utm_zones():
    assert analysis.utm_srid(lon=-87.63, lat=41.88) == 32616  # Chicago
    assert analysis.utm_srid(lon=-73.99, lat=40.73) == 32618  # New York
    assert analysis.utm_srid(lon=151.2, lat=-33.87) == 32756  # Sydney


# --- emerging hot spots on data with known trends -------------------------------------------

SLICES = 24
SIZE = 100.0
BAND = 350.0  # two rings of neighbours


@pytest.fixture(scope="module")
def cube():
    """A 40 × 40 hexagon grid, 24 months of counts: background Poisson(10), and clusters of
    19 cells (a centre and its two rings) built to show each pattern."""
    rng = np.random.default_rng(311)
    i, j = (a.ravel() for a in np.meshgrid(np.arange(40), np.arange(40), indexing="ij"))
    xy = analysis.hex_centres(i, j, size_m=SIZE)
    counts = rng.poisson(10, size=(len(i), SLICES)).astype(float)
    t = np.arange(SLICES)
    designs = {
        "intensifying_hot": 20.0 + 2.0 * t,
        "diminishing_hot": 66.0 - 2.0 * t,  # with the one above, the city total stays level
        "persistent_hot": np.full(SLICES, 40.0),
        "new_hot": np.where(t == SLICES - 1, 40.0, 10.0),
        "consecutive_hot": np.where(t >= SLICES - 3, 40.0, 10.0),
        "sporadic_hot": np.where(np.isin(t, [3, 10, 17, SLICES - 1]), 40.0, 10.0),
        "oscillating_hot": np.where(t < 6, 0.0, np.where(t == SLICES - 1, 40.0, 10.0)),
        "historical_hot": np.where(t < SLICES - 2, 40.0, 10.0),
        "new_cold": np.where(t == SLICES - 1, 0.0, 10.0),
    }
    centres = {}
    for n, (name, series) in enumerate(designs.items()):
        ci, cj = 5 + 10 * (n % 3), 5 + 10 * (n // 3)
        centre = int(np.flatnonzero((i == ci) & (j == cj))[0])
        members = np.flatnonzero(np.hypot(*(xy - xy[centre]).T) <= BAND)
        assert len(members) == 19
        counts[members] = series
        centres[name] = centre
    return counts, analysis.distance_band_weights(xy, band_m=BAND), centres


def test_emerging_hot_spots_find_the_built_patterns(cube):
    counts, weights, centres = cube
    result = analysis.emerging_hot_spots(counts, weights)
    found = {name: result.pattern[centre] for name, centre in centres.items()}
    assert found == {name: name for name in centres}
    assert result.trend_z[centres["intensifying_hot"]] > 3
    assert result.trend_z[centres["diminishing_hot"]] < -3
    assert result.trend_p[centres["persistent_hot"]] > 0.05
    # Most of the background shows no pattern.
    assert result.summary()["patterns"]["no_pattern"] > 0.8 * len(counts)


@pytest.mark.parametrize(
    ("bins", "trend", "pattern"),
    [
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 3], 0, "new_hot"),
        ([0, 0, 0, 0, 0, 0, 0, 1, 2, 3], 1, "consecutive_hot"),
        ([0, 2, 0, 0, 0, 0, 0, 1, 2, 3], 1, "sporadic_hot"),
        ([-2, 0, 0, 0, 0, 0, 0, 0, 0, 1], 0, "oscillating_hot"),
        ([1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 1, "intensifying_hot"),
        ([2, 2, 2, 2, 2, 2, 2, 2, 2, 2], 0, "persistent_hot"),
        ([3, 3, 3, 3, 3, 2, 2, 1, 1, 1], -1, "diminishing_hot"),
        ([3, 3, 3, 3, 3, 3, 3, 3, 3, 0], 0, "historical_hot"),
        ([0, 0, 0, 0, 0, 0, 0, 0, -1, -2], -1, "consecutive_cold"),
        ([-3, -3, -3, -3, -3, -3, -3, -3, -3, -3], -1, "intensifying_cold"),
        ([0, 1, 0, 2, 0, 0, 0, 0, 0, 0], 0, "no_pattern"),
        ([3, 3, 3, 3, 3, 3, 3, 3, 3, -1], 0, "oscillating_cold"),  # the last slice decides
    ],
)
def test_pattern_rules(bins, trend, pattern):
    assert analysis.pattern_of(bins, trend=trend) == pattern


def test_mann_kendall_is_the_textbook_test():
    rng = np.random.default_rng(5)
    series = np.vstack(
        [
            np.arange(20.0),  # a perfect rise
            rng.normal(size=20),
            np.round(rng.normal(size=20)),  # many ties
            np.full(20, 2.0),  # no change at all
        ]
    )
    tau, z, p = analysis.mann_kendall(series)
    for row, expected in enumerate(_textbook_mann_kendall(series)):
        assert z[row] == pytest.approx(expected[0], abs=1e-9)
        assert p[row] == pytest.approx(expected[1], abs=1e-9)
    assert tau[0] == 1.0
    assert p[0] < 1e-6
    assert (tau[3], p[3]) == (0.0, 1.0)


def _textbook_mann_kendall(series):
    """S = Σ sign(x_l - x_k) over k < l; Var(S) = [n(n-1)(2n+5) - Σ t(t-1)(2t+5)] / 18 over the
    sizes t of groups of ties; z = S / sqrt(Var S) (no continuity correction); two-sided p."""
    from scipy.stats import norm

    out = []
    for x in series:
        n = len(x)
        s = sum(np.sign(x[b] - x[a]) for a in range(n) for b in range(a + 1, n))
        _, ties = np.unique(x, return_counts=True)
        var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties)) / 18
        if var == 0:
            out.append((0.0, 1.0))
            continue
        z = s / np.sqrt(var)
        out.append((z, 2 * norm.sf(abs(z))))
    return out


# --- grouped percentiles and density ---------------------------------------------------------


def test_grouped_percentiles_are_pandas_and_numpys():
    rng = np.random.default_rng(11)
    n = 50_000
    values = rng.exponential(3.0, n)
    values[rng.random(n) < 0.1] = np.nan
    values[:100] = np.round(values[:100])  # ties
    groups = rng.integers(0, 700, n)
    ours = analysis.grouped_percentiles(values, groups, 702, (0.5, 0.9))
    frame = pd.DataFrame({"g": groups, "v": values})
    theirs = frame.groupby("g")["v"].quantile([0.5, 0.9]).unstack()
    assert np.allclose(ours[theirs.index.to_numpy()], theirs.to_numpy(), equal_nan=True)
    assert np.isnan(ours[700:]).all()  # empty groups
    one = values[groups == 3]
    assert ours[3, 1] == pytest.approx(np.nanpercentile(one, 90))
    order = analysis.ValueOrder.of(values)  # sorted once, reused for another grouping
    coarse = analysis.grouped_percentiles(order, groups // 100, 7, (0.5,))
    assert coarse[2, 0] == pytest.approx(np.nanmedian(values[groups // 100 == 2]))


def test_kernel_density_keeps_every_request():
    grid = np.zeros((200, 200))
    grid[100, 100] = 30
    grid[40, 150] = 12
    surface = analysis.kernel_density(grid, x0=0.0, y0=0.0, cell_m=20.0, bandwidth_m=100.0)
    assert surface.values.sum() * (20.0 * 20.0 / 1e6) == pytest.approx(42.0)
    peak = np.unravel_index(surface.values.argmax(), surface.shape)
    assert peak == (100, 100)
    # A Gaussian of sigma 100 m: 30 requests at the peak give 30 / (2π σ²) per m².
    assert surface.values.max() == pytest.approx(30 / (2 * np.pi * 100.0**2) * 1e6, rel=0.02)


def test_hex_index_finds_the_nearest_centre():
    rng = np.random.default_rng(3)
    xy = rng.uniform(-5_000, 5_000, size=(20_000, 2))
    i, j = analysis.hex_index(xy[:, 0], xy[:, 1], size_m=120.0)
    mine = np.hypot(*(xy - analysis.hex_centres(i, j, size_m=120.0)).T)
    assert mine.max() <= 120.0 + 1e-9  # inside the hexagon's circumcircle
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)):
        other = np.hypot(*(xy - analysis.hex_centres(i + di, j + dj, size_m=120.0)).T)
        assert (mine <= other + 1e-9).all()
    centres = analysis.hex_centres(np.array([0, 3, -7]), np.array([0, -2, 5]), size_m=80.0)
    found_i, found_j = analysis.hex_index(*centres.T, size_m=80.0)
    assert (found_i.tolist(), found_j.tolist()) == ([0, 3, -7], [0, -2, 5])


def test_hex_centres_match_postgis(db):  # type: ignore[no-untyped-def]
    from django.db import connection

    cells = [(0, 0), (1, 0), (0, 1), (1, 1), (-1, -1), (-3, 2), (5, -4)]
    with connection.cursor() as cursor:
        centres = []
        for ci, cj in cells:
            cursor.execute(
                "SELECT ST_X(ST_Centroid(ST_Hexagon(250, %s, %s))), "
                "ST_Y(ST_Centroid(ST_Hexagon(250, %s, %s)))",
                [ci, cj, ci, cj],
            )
            centres.append(cursor.fetchone())
    ours = analysis.hex_centres(*np.array(cells).T, size_m=250.0)
    assert np.allclose(ours, np.array(centres), atol=1e-6)
