"""Performance reports for managers: how fast each department, category and area is served.

- **Time to acknowledge**: from creation to the request's *first status change* (its first
  status event whose status is not the city's initial one), in hours. A request closed without
  any step in between was first answered by its closing, so its time to acknowledge is its time
  to close; ``acknowledged_by_closing`` counts them (imported history has only "created" and
  "closed" events, so there every acknowledgement is a closing). Requests whose status never
  changed are *unacknowledged*: they are left out of the percentiles, counted in ``requests`` −
  ``acknowledged``, and shown with their age under open work.
- **Time to close**: creation to ``closed_at``, in days, over closed requests.
- **SLA compliance**: over requests with an ``expected_at`` (set from the category's SLA), met
  = closed by then, missed = closed later or still open past it; compliance = met / (met +
  missed), the still-open requests not yet due are pending.
- **Backlog**: open at the end of each month.
- **Equity**: median days to close per area against the city median (ratio and difference),
  mapped.
- **Open work**: what is open now, by age.

Areas are those frozen on each request when it was routed (``routing["boundaries"]``), in the
report's layer (e.g. ``wards``); months are calendar months in the city's time zone. Medians and
90th percentiles interpolate between ranks, as PostgreSQL's ``percentile_cont`` does.

The report reads the request facts (``maps_requestfact``, one narrow row per request) as of
their last refresh (``facts_as_of``; a periodic job refreshes them, ``refresh=True`` first
brings them up to date) and aggregates them with numpy: one COPY of the rows, then every
grouping from the same arrays.
"""

import datetime as dt
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from boundaries.models import Boundary
from geo311.models import Department, ServiceCategory

from . import selectors, services, sql
from .analysis import ValueOrder, grouped_percentiles
from .filters import RequestFilter
from .models import RefreshMark

# An area with fewer closed requests than this is flagged: its median says little.
MIN_AREA_CLOSED = 30
QUANTILES = (0.5, 0.9)
AGE_BUCKETS = (("0-2", 0, 2), ("3-7", 2, 7), ("8-30", 7, 30), ("31-90", 30, 90),
               ("over 90", 90, np.inf))  # fmt: skip


def _round(value: float | None, digits: int = 2) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def _month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


class _Facts:
    """The report's rows as arrays, with the derived flags every grouping counts."""

    def __init__(self, rows: np.ndarray, *, area: np.ndarray, now: dt.datetime):
        self.department_id = rows["department_id"].astype(np.int64)
        self.category_id = rows["category_id"].astype(np.int64)
        self.area = area
        self.month = rows["month"].astype(np.int64)
        self.closed_month = rows["closed_month"].astype(np.int64)
        self.ack_h = rows["ack_h"].astype(float)
        self.close_d = rows["close_d"].astype(float)
        self.sla_h = rows["sla_h"].astype(float)
        self.requested_epoch = rows["requested_epoch"].astype(float)
        self.closed = ~np.isnan(self.close_d)
        self.age_d = np.where(
            self.closed, np.nan, (now.timestamp() - self.requested_epoch) / 86400.0
        )
        self.acknowledged = ~np.isnan(self.ack_h)
        close_h = self.close_d * 24.0
        # The first change was the closing when both happened at the same moment.
        self.by_closing = self.acknowledged & self.closed & (np.abs(self.ack_h - close_h) < 1e-6)
        self.with_sla = ~np.isnan(self.sla_h)
        with np.errstate(invalid="ignore"):
            self.sla_met = self.with_sla & self.closed & (close_h <= self.sla_h)
            self.sla_missed = self.with_sla & (
                (self.closed & (close_h > self.sla_h))
                | (~self.closed & (self.age_d * 24.0 > self.sla_h))
            )

    def subset(self, keep: np.ndarray) -> "_Facts":
        other = object.__new__(_Facts)
        for name, value in vars(self).items():
            if name not in ("ack_order", "close_order"):  # cached orders of these rows only
                setattr(other, name, value[keep])
        return other

    def __len__(self) -> int:
        return len(self.month)

    @cached_property
    def ack_order(self) -> ValueOrder:
        return ValueOrder.of(self.ack_h)

    @cached_property
    def close_order(self) -> ValueOrder:
        return ValueOrder.of(self.close_d)


def _column(values: np.ndarray, digits: int | None = None) -> list:
    """A numpy column as JSON-ready values: ints, or floats rounded with None for NaN."""
    if digits is None:
        return values.astype(np.int64).tolist()
    return [None if v != v else v for v in np.round(values, digits).tolist()]


def _records(columns: dict[str, list]) -> list[dict]:
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


_COUNTED = ("closed", "acknowledged", "by_closing", "with_sla", "sla_met", "sla_missed")


def _counts(facts: _Facts, codes: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Requests and each flag of ``_COUNTED`` per group."""
    out = {"requests": np.bincount(codes, minlength=n)}
    for name in _COUNTED:
        out[name] = np.bincount(codes[getattr(facts, name)], minlength=n)
    return out


def _stats(facts: _Facts, codes: np.ndarray, n: int, counts: dict[str, np.ndarray]) -> list[dict]:
    """Per group: ``counts`` (additive, so a coarser grouping sums a finer one's) and the
    medians and 90th percentiles of the times, from the rows."""
    requests, acknowledged = counts["requests"], counts["acknowledged"]
    met, missed, with_sla = counts["sla_met"], counts["sla_missed"], counts["with_sla"]
    # numpy sorts and gathers without the GIL: the two times are done side by side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        ack_future = pool.submit(grouped_percentiles, facts.ack_order, codes, n, QUANTILES)
        close = grouped_percentiles(facts.close_order, codes, n, QUANTILES)
        ack = ack_future.result()
    decided = met + missed
    with np.errstate(invalid="ignore", divide="ignore"):
        compliance = np.where(decided > 0, 100.0 * met / decided, np.nan)
    return _records(
        {
            "requests": _column(requests),
            "closed": _column(counts["closed"]),
            "acknowledged": _column(acknowledged),
            "acknowledged_by_closing": _column(counts["by_closing"]),
            "unacknowledged": _column(requests - acknowledged),
            "ack_median_h": _column(ack[:, 0], 2),
            "ack_p90_h": _column(ack[:, 1], 2),
            "close_median_d": _column(close[:, 0], 2),
            "close_p90_d": _column(close[:, 1], 2),
            "with_sla": _column(with_sla),
            "sla_met": _column(met),
            "sla_missed": _column(missed),
            "sla_pending": _column(with_sla - decided),
            "sla_compliance_pct": _column(compliance, 1),
        }
    )


def _codes(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense group codes of the rows by ``columns`` (non-negative integers) and each group's
    key values: one mixed-radix integer key per row, then counted (one column) or sorted."""
    if not len(columns[0]):
        return np.zeros(0, dtype=np.int64), np.zeros((0, len(columns)), dtype=np.int64)
    lows = [int(c.min()) for c in columns]
    sizes = [int(c.max()) - low + 1 for c, low in zip(columns, lows, strict=True)]
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column, low, size in zip(columns, lows, sizes, strict=True):
        key = key * size + (column - low)
    total = int(np.prod(sizes, dtype=np.int64))
    if total <= 4 * len(key):
        present = np.flatnonzero(np.bincount(key, minlength=total))
        index = np.full(total, -1, dtype=np.int64)
        index[present] = np.arange(len(present))
        inverse, unique = index[key], present
    else:
        unique, inverse = np.unique(key, return_inverse=True)
    keys = np.zeros((len(unique), len(columns)), dtype=np.int64)
    rest = unique.astype(np.int64)
    for position in range(len(columns) - 1, -1, -1):
        keys[:, position] = rest % sizes[position] + lows[position]
        rest //= sizes[position]
    return inverse.ravel(), keys


def performance_report(
    *,
    request_filter: RequestFilter,
    layer: str | None = "wards",
    now: dt.datetime | None = None,
    refresh: bool = False,
    detail: bool = True,
) -> dict[str, Any]:
    """The whole report as plain data (JSON-ready): ``city``, ``by_department``,
    ``by_category``, ``by_area``, ``by_month``, ``detail`` (department × category × area ×
    month, unless ``detail`` is False), ``backlog``, ``open_work``, ``equity``. ``layer`` None
    leaves areas out."""
    mark = RefreshMark.objects.filter(name=services.FACTS).first()
    if refresh or mark is None or (layer and layer not in mark.layers):
        services.request_facts_refresh()
        mark = RefreshMark.objects.get(name=services.FACTS)
    if layer and layer not in mark.layers:
        raise ValidationError({"layer": f"no boundary layer {layer!r}"})
    now = now or timezone.now()
    filter_params = request_filter.params()
    rows = sql.facts_for_report(
        params={**filter_params, "start": None, "range_start": filter_params["start"]},
        layers=len(mark.layers),
        parallel=settings.GEO311_ANALYSIS_CONNECTIONS,
    )
    codes, area = _areas(rows, mark.layers.index(layer) if layer else None)
    everything = _Facts(rows, area=area, now=now)
    start = filter_params["start"]
    facts = (
        everything.subset(everything.requested_epoch >= start.timestamp()) if start else everything
    )
    with ThreadPoolExecutor(max_workers=1) as pool:  # each time sorted once, side by side
        sorting = pool.submit(lambda: facts.ack_order)
        facts.close_order  # noqa: B018 - computed here meanwhile
        sorting.result()
    departments = dict(Department.objects.values_list("pk", "slug"))
    categories = dict(ServiceCategory.objects.values_list("pk", "service_code"))

    def area_name(index: int) -> str:
        return codes[index - 1] if index > 0 else ""

    month_labels: dict[int, str] = {}

    def label(name: str, value: int) -> str:
        if name == "department":
            return departments.get(value, "")
        if name == "category":
            return categories.get(value, "")
        if name == "area":
            return area_name(value)
        if value not in month_labels:
            month_labels[value] = _month_label(value)
        return month_labels[value]

    def labelled(columns: Sequence[str], keys: np.ndarray, stats: list[dict]) -> list[dict]:
        if not columns:
            return stats
        names = {
            name: [label(name, v) for v in keys[:, position].tolist()]
            for position, name in enumerate(columns)
        }
        return [
            {**dict(zip(names, values, strict=True)), **row}
            for values, row in zip(zip(*names.values(), strict=True), stats, strict=True)
        ]

    # The finest grouping first; the others group its groups (their counts are its sums) and
    # take their percentiles from the rows through it.
    names = ("department", "category", "area", "month")
    detail_codes, detail_keys = _codes(
        facts.department_id, facts.category_id, facts.area, facts.month
    )
    detail_counts = _counts(facts, detail_codes, len(detail_keys))
    levels: dict[str, list[dict]] = {}
    for name, positions in (
        ("by_department", (0,)),
        ("by_category", (1,)),
        ("by_area", (2,) if layer else ()),
        ("by_month", (3,)),
        ("city", ()),
        ("detail", (0, 1, 2, 3)),
    ):
        if name == "by_area" and not layer or name == "detail" and not detail:
            levels[name] = []
            continue
        if positions:
            group_of, keys = _codes(*(detail_keys[:, p] for p in positions))
        else:
            group_of, keys = np.zeros(len(detail_keys), dtype=np.int64), np.zeros((1, 0))
        n = len(keys)
        counts = {k: np.bincount(group_of, weights=v, minlength=n).astype(np.int64)
                  for k, v in detail_counts.items()}  # fmt: skip
        stats = _stats(facts, group_of[detail_codes], n, counts)
        levels[name] = labelled([names[p] for p in positions], keys.astype(np.int64), stats)
    city = levels.pop("city")[0]  # one group, even of no request
    months = _month_span(request_filter, facts)
    return {
        "filter": request_filter.as_dict(),
        "layer": layer,
        "time_zone": settings.TIME_ZONE,
        "generated_at": now.isoformat(),
        "facts_as_of": mark.at.isoformat(),
        "city": city,
        **levels,
        "backlog": _backlog(everything, months, labelled),
        "open_work": _open_work(everything, labelled),
        "equity": equity(rows=levels["by_area"], city=city) if layer else [],
    }


def _areas(rows: np.ndarray, position: int | None) -> tuple[list[str], np.ndarray]:
    """The area codes of the report's layer, in order, and each row's area as a 1-based
    index into them (0: not routed in that layer). Boundaries of different versions with one
    code are one area."""
    if position is None:
        return [], np.zeros(len(rows), dtype=np.int64)
    ids = rows[f"area_{position}"].astype(np.int64)
    present = np.unique(ids)
    code_of = dict(Boundary.objects.filter(pk__in=present.tolist()).values_list("pk", "code"))
    codes = sorted(set(code_of.values()))
    index_of_code = {code: n + 1 for n, code in enumerate(codes)}
    lookup = np.zeros(int(present.max()) + 1 if len(present) else 1, dtype=np.int64)
    for pk, code in code_of.items():
        lookup[pk] = index_of_code[code]
    return codes, lookup[ids]


def _month_span(request_filter: RequestFilter, facts: _Facts) -> tuple[int, int] | None:
    """First and last month (indices) of the report: the filter's dates, else the data's."""
    if request_filter.start:
        first = request_filter.start.year * 12 + request_filter.start.month - 1
    elif len(facts):
        first = int(facts.month.min())
    else:
        return None
    if request_filter.end:
        last = request_filter.end.year * 12 + request_filter.end.month - 1
    elif len(facts):
        last = int(facts.month.max())
    else:
        return None
    return first, last


def _backlog(facts: _Facts, months: tuple[int, int] | None, labelled: Any) -> list[dict]:
    """Open at the end of each month, per department × category × area: made by then (or
    before the range and still open at its start) and not closed by then."""
    if months is None or not len(facts):
        return []
    first, last = months
    span = last - first + 1
    codes_of, keys = _codes(facts.department_id, facts.category_id, facts.area)
    opened = np.clip(facts.month - first, 0, None)
    width = span + 1  # the last column collects closings after the range
    inside = opened < span
    closing = facts.closed_month - first
    shut = (facts.closed_month >= 0) & (closing < span) & inside
    cells = len(keys) * width
    grid = np.bincount(codes_of[inside] * width + opened[inside], minlength=cells)
    grid -= np.bincount(codes_of[shut] * width + np.clip(closing[shut], 0, None), minlength=cells)
    open_at_end = np.cumsum(grid.reshape(len(keys), width)[:, :span], axis=1).tolist()
    groups = labelled(("department", "category", "area"), keys, [{}] * len(keys))
    months_of = [_month_label(first + m) for m in range(span)]
    return [
        {**group, "month": month, "open_at_month_end": value}
        for group, values in zip(groups, open_at_end, strict=True)
        for month, value in zip(months_of, values, strict=True)
    ]


def _open_work(facts: _Facts, labelled: Any) -> list[dict]:
    """Open now, per department × category × area and in total: how many, how old (days),
    how many past their expected time, how many never changed status."""
    is_open = ~np.isnan(facts.age_d)
    age = facts.age_d[is_open]
    ack_missing = ~facts.acknowledged[is_open]
    with np.errstate(invalid="ignore"):
        overdue = facts.with_sla[is_open] & (age * 24.0 > facts.sla_h[is_open])
    codes_of, keys = _codes(
        facts.department_id[is_open], facts.category_id[is_open], facts.area[is_open]
    )
    n = len(keys)
    total = n  # one more group: everything
    codes_all = np.concatenate([codes_of, np.full(len(age), total)])
    ages = np.concatenate([age, age])
    flags_overdue = np.concatenate([overdue, overdue])
    flags_unack = np.concatenate([ack_missing, ack_missing])
    count = np.bincount(codes_all, minlength=n + 1)
    buckets = {
        label: np.bincount(
            codes_all, weights=((ages > low) | (low == 0)) & (ages <= high), minlength=n + 1
        )
        for label, low, high in AGE_BUCKETS
    }
    median = grouped_percentiles(ages, codes_all, n + 1, (0.5,))[:, 0]
    oldest = np.full(n + 1, np.nan)
    if len(ages):
        np.fmax.at(oldest, codes_all, ages)
    overdue_n = np.bincount(codes_all, weights=flags_overdue, minlength=n + 1)
    unack_n = np.bincount(codes_all, weights=flags_unack, minlength=n + 1)
    groups = labelled(("department", "category", "area"), keys, [{}] * n)
    groups.append({"department": "", "category": "", "area": ""})
    out = []
    for g, group in enumerate(groups):
        if count[g] == 0 and g < n:
            continue
        out.append(
            {
                **group,
                "total": g == n,
                "open": int(count[g]),
                "age_days": {label: int(buckets[label][g]) for label, _, _ in AGE_BUCKETS},
                "median_age_d": _round(median[g], 1),
                "oldest_d": _round(oldest[g], 1),
                "overdue": int(overdue_n[g]),
                "unacknowledged": int(unack_n[g]),
            }
        )
    return out


def equity(*, rows: list[dict], city: dict) -> list[dict]:
    """Per area: median days to close against the city median (ratio > 1: slower than the
    city), with a flag where too few requests were closed to say."""
    city_median = city["close_median_d"]
    out = []
    for row in rows:
        median = row["close_median_d"]
        ratio = median / city_median if median is not None and city_median else None
        out.append(
            {
                "area": row["area"],
                "closed": row["closed"],
                "close_median_d": median,
                "close_p90_d": row["close_p90_d"],
                "city_median_d": city_median,
                "ratio_to_city": _round(ratio, 3),
                "difference_d": _round(median - city_median, 2)
                if median is not None and city_median is not None
                else None,
                "few_requests": row["closed"] < MIN_AREA_CLOSED,
            }
        )
    return out


def equity_geojson(*, report: dict, simplify_m: float = 25.0) -> dict:
    """The equity rows of a report on the polygons of its layer (the version most of the
    requests were routed with), as a GeoJSON FeatureCollection (dict) for a choropleth."""
    layer = report["layer"]
    if not layer:
        return {"type": "FeatureCollection", "features": []}
    request_filter = RequestFilter.from_dict(report["filter"])
    version = sql.routed_version(filter_params=request_filter.params(), layer=layer)
    by_area = {row["area"]: row for row in report["equity"]}
    features = []
    if version is not None:
        for code, name, geometry in sql.area_polygons(
            layer=layer, version=version, srid=selectors.analysis_srid(), simplify_m=simplify_m
        ):
            row = by_area.get(code, {"area": code, "closed": 0, "close_median_d": None})
            features.append(
                {
                    "type": "Feature",
                    "id": code,
                    "geometry": json.loads(geometry),
                    "properties": {**row, "name": name, "layer": layer, "version": version},
                }
            )
    return {"type": "FeatureCollection", "features": features}
