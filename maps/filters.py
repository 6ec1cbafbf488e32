"""Which requests an analysis or report reads: categories, departments, statuses, dates.

A ``RequestFilter`` is what a planner asks (service codes, department slugs, status codes or
open/closed, dates in the city's time zone); ``params()`` resolves it to the ids and UTC instants
that ``maps.sql`` binds, with one query per named kind of thing.
"""

import datetime as dt
import hashlib
import json
import zoneinfo
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError

from geo311.models import Department, ServiceCategory, Status

OPEN311_STATES = ("open", "closed")


@dataclass(frozen=True)
class RequestFilter:
    """``start`` and ``end`` are dates in the city's time zone, both included; empty tuples and
    None mean "all"."""

    categories: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    statuses: tuple[str, ...] = field(default=())  # status codes, or "open" / "closed"
    start: dt.date | None = None
    end: dt.date | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.end < self.start:
            raise ValidationError({"to": f"{self.end} is before the start date {self.start}"})
        for name in ("categories", "departments", "statuses"):
            object.__setattr__(self, name, tuple(sorted(set(getattr(self, name)))))

    def as_dict(self) -> dict:
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        data["categories"] = list(self.categories)
        data["departments"] = list(self.departments)
        data["statuses"] = list(self.statuses)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RequestFilter":
        return cls(
            categories=tuple(data.get("categories") or ()),
            departments=tuple(data.get("departments") or ()),
            statuses=tuple(data.get("statuses") or ()),
            start=dt.date.fromisoformat(data["start"]) if data.get("start") else None,
            end=dt.date.fromisoformat(data["end"]) if data.get("end") else None,
        )

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        parts = [
            f"categories {', '.join(self.categories)}" if self.categories else "all categories",
        ]
        if self.departments:
            parts.append(f"departments {', '.join(self.departments)}")
        if self.statuses:
            parts.append(f"status {', '.join(self.statuses)}")
        if self.start or self.end:
            parts.append(f"requested {self.start or '…'} to {self.end or '…'}")
        return "; ".join(parts)

    def without_dates(self) -> "RequestFilter":
        return RequestFilter(
            categories=self.categories, departments=self.departments, statuses=self.statuses
        )

    def params(self) -> dict:
        """The filter as ``maps.sql`` binds it: ``start``/``end`` as UTC instants (end
        exclusive: the midnight after the end date), ``*_ids`` as lists or None for "all".
        Raises ValidationError naming the filter field for an unknown code."""
        tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        return {
            "start": _midnight(self.start, tz),
            "end": _midnight(self.end + dt.timedelta(days=1), tz) if self.end else None,
            "category_ids": _ids(ServiceCategory, "service_code", self.categories, "category"),
            "department_ids": _ids(Department, "slug", self.departments, "department"),
            "status_ids": _status_ids(self.statuses),
        }


def _midnight(day: dt.date | None, tz: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if day is None:
        return None
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def _ids(model: type, field_name: str, codes: tuple[str, ...], label: str) -> list[int] | None:
    if not codes:
        return None
    found = dict(
        model._default_manager.filter(**{f"{field_name}__in": codes}).values_list(  # type: ignore[attr-defined]
            field_name, "pk"
        )
    )
    unknown = sorted(set(codes) - set(found))
    if unknown:
        raise ValidationError({label: f"unknown {label} {', '.join(unknown)}"})
    return sorted(found.values())


def _status_ids(statuses: tuple[str, ...]) -> list[int] | None:
    if not statuses:
        return None
    states = [s for s in statuses if s in OPEN311_STATES]
    codes = [s for s in statuses if s not in OPEN311_STATES]
    rows = list(Status.objects.values_list("code", "open311_status", "pk"))
    unknown = sorted(set(codes) - {code for code, _, _ in rows})
    if unknown:
        raise ValidationError(
            {"status": f"unknown status {', '.join(unknown)} (use open, closed or a status code)"}
        )
    return sorted({pk for code, state, pk in rows if code in codes or state in states})
