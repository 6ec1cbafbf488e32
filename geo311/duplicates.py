"""Duplicate detection: which earlier requests a new report probably repeats, with a score and
the reasons for it in plain words.

Candidates are earlier requests of the same category or the same category group, within the
category's radius (metres, on the spheroid) and time window, still open at the probe's time or
closed only just before it. Each gets a logistic score in (0, 1) from

- distance (metres) and time gap (days), both on a log scale;
- whether it was still open then, or how recently it was closed;
- same street address (normal form, ``geo311.addresses``) and pg_trgm address similarity;
- same category or only the same group; pg_trgm description similarity;
- how many candidates there are around (a busy spot makes any one of them less telling).

The weights are settings (``GEO311_DUPLICATE_WEIGHTS``); their defaults were fitted by logistic
regression on Chicago's labelled duplicates and are checked by ``make bench
ONLY=duplicates_chicago``, which replays that history through this same SQL
(``geo311.sql_duplicates``). Radius, window and the "likely" threshold are per category, with
defaults in settings.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TypeVar, cast

from django.conf import settings
from django.contrib.gis.geos import Point
from django.db import transaction
from django.utils import timezone

from . import sql_duplicates as sql
from .addresses import normalize_address
from .models import ServiceCategory, ServiceRequest, Status

M = TypeVar("M", ServiceRequest, ServiceCategory, Status)


@dataclass(frozen=True)
class Weights:
    """Logistic weights of the duplicate score (see the module docstring for the features)."""

    bias: float
    distance: float  # × ln(1 + metres / 10)
    days: float  # × ln(1 + days between)
    open: float  # still open at the probe's time
    recently_closed: float  # × exp(-days since it was closed), when closed
    same_address: float
    address_mismatch: float  # × (1 - pg_trgm similarity of the normal forms), when both known
    other_category: float  # same group, different category
    description_similarity: float  # pg_trgm similarity, 0-1
    nearby: float  # × ln(number of candidates)

    @classmethod
    def from_settings(cls) -> "Weights":
        return cls.from_mapping(settings.GEO311_DUPLICATE_WEIGHTS)

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> "Weights":
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        missing = sorted(set(names) - set(values))
        if unknown or missing:
            raise ValueError(
                f"duplicate weights: unknown {', '.join(unknown) or '-'}; "
                f"missing {', '.join(missing) or '-'}"
            )
        return cls(**{name: float(values[name]) for name in names})

    def as_params(self) -> dict[str, float]:
        return {f"w_{f.name}": getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Policy:
    """Search radius (metres), window (days) and "likely" threshold of one category."""

    radius_m: float
    window_days: int
    likely_score: float


def policy_for(*, category: ServiceCategory) -> Policy:
    return Policy(
        radius_m=float(category.duplicate_radius_m or settings.GEO311_DUPLICATE_RADIUS_M),
        window_days=int(category.duplicate_window_days or settings.GEO311_DUPLICATE_WINDOW_DAYS),
        likely_score=(
            category.duplicate_likely_score
            if category.duplicate_likely_score is not None
            else settings.GEO311_DUPLICATE_LIKELY_SCORE
        ),
    )


def query_params(*, weights: Weights | None = None, limit: int = 5) -> dict[str, object]:
    """The parameters every candidate query shares: defaults, weights and the per-probe limit."""
    return {
        "radius_m": float(settings.GEO311_DUPLICATE_RADIUS_M),
        "window_days": int(settings.GEO311_DUPLICATE_WINDOW_DAYS),
        "likely_score": float(settings.GEO311_DUPLICATE_LIKELY_SCORE),
        "recently_closed_days": float(settings.GEO311_DUPLICATE_RECENTLY_CLOSED_DAYS),
        "limit": limit,
        **(weights or Weights.from_settings()).as_params(),
    }


@dataclass(frozen=True)
class Features:
    distance_m: float
    days: float
    is_open: bool
    closed_days: float | None
    address_known: bool
    same_address: bool
    address_similarity: float
    same_category: bool
    description_similarity: float
    nearby: int


@dataclass(frozen=True)
class Candidate:
    """An earlier request that the probe may repeat. ``request`` holds only its public fields
    (id, public id, category code and name, open/closed, times, address, location); anything
    else is loaded from the database on access."""

    request: ServiceRequest
    score: float
    features: Features
    reasons: list[str]
    # The request's exact point (WGS84), as numbers: ``request.location`` is the same point,
    # made into a GEOS geometry only when it is read.
    lon: float
    lat: float

    @property
    def open311_status(self) -> str:
        return self.request.status.open311_status


def _ago(days: float) -> str:
    if days < 1:
        return "less than a day ago"
    whole = int(days)
    return "1 day ago" if whole == 1 else f"{whole} days ago"


def reasons_for(features: Features, *, group: str = "") -> list[str]:
    """The features in plain words ("38 m away", "reported 2 days ago", "still open", "same
    category", "same street address", ...). ``group`` names the shared category group."""
    f = features
    reasons = [
        "at the same spot" if f.distance_m < 1 else f"{round(f.distance_m)} m away",
        f"reported {_ago(f.days)}",
        "still open" if f.is_open else f"closed {_ago(f.closed_days or 0.0)}",
        "same category" if f.same_category else f"same group ({group})",
    ]
    if f.same_address:
        reasons.append("same street address")
    elif f.address_known:
        reasons.append("different street address")
    if f.description_similarity >= 0.5:
        reasons.append("similar description")
    if f.nearby > 1:
        reasons.append(f"{f.nearby} earlier reports around")
    return reasons


def _partial(model: type[M], values: dict[str, object]) -> M:
    """A model instance with only ``values`` (by attname) loaded; other fields load on access,
    as with ``.only()``."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db("default", names, [values[name] for name in names])


_CANDIDATE_AT = 1 + len(sql.PROBE_COLUMNS)
_SCORE_AT = _CANDIDATE_AT + sql.COLUMNS.index("score")


def _candidate(row: tuple, *, group: str) -> Candidate:
    values = dict(zip(sql.COLUMNS, row[_CANDIDATE_AT:], strict=True))
    request = _partial(
        ServiceRequest,
        {
            "id": values["id"],
            "public_id": values["public_id"],
            "category_id": values["category_id"],
            "status_id": values["status_id"],
            # EWKT: the proxy makes the GEOS point on first access (most answers never ask).
            "location": f"SRID=4326;POINT({values['lon']!r} {values['lat']!r})",
            "address": values["address"],
            "requested_at": values["requested_at"],
            "closed_at": values["closed_at"],
        },
    )
    request.category = _partial(
        ServiceCategory,
        {
            "id": values["category_id"],
            "service_code": values["service_code"],
            "name": values["service_name"],
            "sensitive": bool(values["sensitive"]),
        },
    )
    request.status = _partial(
        Status, {"id": values["status_id"], "open311_status": values["status"]}
    )
    features = Features(
        distance_m=float(values["distance_m"]),
        days=float(values["days"]),
        is_open=bool(values["is_open"]),
        closed_days=None if values["closed_days"] is None else float(values["closed_days"]),
        address_known=bool(values["address_known"]),
        same_address=bool(values["same_address"]),
        address_similarity=float(values["address_similarity"]),
        same_category=bool(values["same_category"]),
        description_similarity=float(values["description_similarity"]),
        nearby=int(values["nearby"]),
    )
    return Candidate(
        request=request,
        score=float(values["score"]),
        features=features,
        reasons=reasons_for(features, group=group),
        lon=float(values["lon"]),
        lat=float(values["lat"]),
    )


def _probe_params(
    *,
    point: Point,
    at: dt.datetime | None,
    address: str,
    description: str,
    limit: int,
    category_id: int | None = None,
    service_code: str | None = None,
    public_id: str | None = None,
    exclude_id: int | None = None,
) -> dict[str, object]:
    if point.srid not in (None, 4326):
        point = cast(Point, point.transform(4326, clone=True))
    return {
        **query_params(limit=limit),
        "category_id": category_id,
        "service_code": service_code,
        "lon": point.x,
        "lat": point.y,
        "at": at or timezone.now(),
        "public_id": public_id,
        "address_key": normalize_address(address) if address.strip() else "",
        "description": description.strip(),
        "exclude_id": exclude_id,
    }


def duplicate_candidates(
    *,
    category: ServiceCategory,
    point: Point,
    at: dt.datetime | None = None,
    address: str = "",
    description: str = "",
    exclude_id: int | None = None,
    public_id: str | None = None,
    limit: int = 5,
    min_score: float = 0.0,
) -> list[Candidate]:
    """The ``limit`` best duplicate candidates for a report of ``category`` at ``point``
    (EPSG:4326) made at ``at`` (default now), best first, leaving out those scoring below
    ``min_score``. One query.

    ``public_id`` (of a stored request being re-checked) hides requests made at the same instant
    with a larger id; ``exclude_id`` hides one request (itself).
    """
    params = _probe_params(
        category_id=category.pk,
        point=point,
        at=at,
        address=address,
        description=description,
        limit=limit,
        public_id=public_id,
        exclude_id=exclude_id,
    )
    return [
        _candidate(row, group=category.group)
        for row in sql.candidates_one(params=params)
        if row[_CANDIDATE_AT] is not None and row[_SCORE_AT] >= min_score
    ]


@dataclass(frozen=True)
class Nearby:
    """The candidates for a report not yet filed, with its category's policy."""

    service_code: str
    policy: Policy
    candidates: list[Candidate]


def nearby_candidates(
    *,
    service_code: str,
    point: Point,
    address: str = "",
    description: str = "",
    limit: int = 5,
) -> Nearby:
    """``duplicate_candidates`` for an active category given by its code, now, in one query
    (the category and its policy come with the candidates). Raises ServiceCategory.DoesNotExist
    for an unknown or retired code."""
    rows = sql.candidates_one(
        params=_probe_params(
            service_code=service_code,
            point=point,
            at=None,
            address=address,
            description=description,
            limit=limit,
        )
    )
    if not rows:
        raise ServiceCategory.DoesNotExist(f"no active service with code '{service_code}'")
    probe = dict(zip(sql.PROBE_COLUMNS, rows[0][1:_CANDIDATE_AT], strict=True))
    group = str(probe["probe_group"])
    return Nearby(
        service_code=str(probe["probe_service_code"]),
        policy=Policy(
            radius_m=float(probe["radius_m"]),
            window_days=int(probe["window_days"]),
            likely_score=float(probe["likely_score"]),
        ),
        candidates=[_candidate(row, group=group) for row in rows if row[_CANDIDATE_AT] is not None],
    )


def likely_duplicate(*, category: ServiceCategory, candidates: list[Candidate]) -> Candidate | None:
    """The best candidate when it reaches the category's "likely" threshold."""
    if candidates and candidates[0].score >= policy_for(category=category).likely_score:
        return candidates[0]
    return None


def service_notice(candidate: Candidate) -> str:
    """What the reporter is told when their request is linked to an earlier one."""
    f = candidate.features
    where = "at the same spot" if f.distance_m < 1 else f"{round(f.distance_m)} m away"
    return (
        f"This looks like request {candidate.request.public_id} reported {_ago(f.days)} "
        f"{where}; staff will check."
    )


@transaction.atomic
def request_address_keys_fill(*, batch: int = 5000) -> int:
    """Give every request with an address and no ``address_key`` its normal form (requests
    written by bulk SQL, such as imports); returns how many were filled."""
    done, after = 0, 0
    while rows := sql.address_keys_missing(after=after, batch=batch):
        ids = [pk for pk, _address in rows]
        keys = [normalize_address(address) for _pk, address in rows]
        done += sql.address_keys_set(ids=ids, keys=keys)
        after = ids[-1]
    return done
