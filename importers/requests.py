"""Load a legacy 311 export (CSV) as historical service requests, routed in bulk.

``import_request_file`` is what the ``import_requests`` command and the tests call. A *mapping*
file (YAML or JSON, see ``importers/mappings/chicago_sanitation.yaml``) names the columns. Each
row is checked in Python (ids, categories, statuses, dates, coordinates) with no query per row,
and its address gets the normal form duplicate detection compares; the points of the clean rows
are placed in the active boundaries all at once (``boundaries.selectors.points_places``); the
rows are copied to a staging table and routed and inserted by set-based SQL
(``geo311.sql.import_staged_requests``): the same most-specific-rule routing as
``geo311.routing.route``, the same jurisdiction and required-layer checks, one transaction per
file. Every row is accounted for: imported, already present (same id from the same file name,
so a re-run adds nothing), or rejected with its row number (the header is row 1) and reason.
"""

import csv
import datetime as dt
import json
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from boundaries import sql as boundaries_sql
from boundaries.selectors import points_places
from geo311 import sql
from geo311.addresses import normalize_address
from geo311.models import RoutingRule, ServiceCategory, ServiceRequest, Status

Progress = Callable[[str], None]

ADDRESS_LENGTH = ServiceRequest._meta.get_field("address").max_length or 300


class RequestImportError(Exception):
    """The file or its mapping cannot be used at all; nothing was written."""


# --- mapping ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueMap:
    """A column whose values are translated (e.g. "Completed - Dup" → duplicate)."""

    column: str
    values: dict[str, str]
    default: str | None = None  # for values not listed; None rejects them

    def get(self, value: str) -> str | None:
        return self.values.get(value, self.default)


@dataclass(frozen=True)
class AttributeMap:
    code: str
    column: str
    values: dict[str, str] | None = None  # None: the text as it is
    default: str | None = None


@dataclass(frozen=True)
class RequestMapping:
    id_column: str
    created_column: str
    created_format: str
    timezone: str
    category: ValueMap | None = None
    service_code: str = ""
    status: ValueMap | None = None
    closed_column: str = ""
    closed_format: str = ""
    closed_without_date: str = "reject"  # or "created": date the closing at creation
    lat_column: str = ""
    lon_column: str = ""
    x_column: str = ""
    y_column: str = ""
    srid: int = 4326
    address_column: str = ""
    zip_column: str = ""
    description_columns: tuple[str, ...] = ()
    attributes: tuple[AttributeMap, ...] = ()

    def columns(self) -> list[str]:
        named = [
            self.id_column,
            self.created_column,
            self.closed_column,
            self.category.column if self.category else "",
            self.status.column if self.status else "",
            self.lat_column,
            self.lon_column,
            self.x_column,
            self.y_column,
            self.address_column,
            self.zip_column,
            *self.description_columns,
            *(a.column for a in self.attributes),
        ]
        return [c for c in dict.fromkeys(named) if c]


def _value_map(where: str, spec: Any) -> ValueMap:
    if not isinstance(spec, dict) or "column" not in spec:
        raise RequestImportError(f"mapping: {where} needs a column and its values")
    values = spec.get("values") or {}
    if not isinstance(values, dict):
        raise RequestImportError(f"mapping: {where}.values must map file values to codes")
    default = spec.get("default")
    return ValueMap(
        column=str(spec["column"]),
        values={str(k): str(v) for k, v in values.items()},
        default=None if default is None else str(default),
    )


def read_mapping(path: Path | str) -> RequestMapping:
    """Read and check a mapping file (YAML or JSON); RequestImportError names what is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RequestImportError(f"cannot read mapping {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestImportError(f"mapping {path} must be a YAML or JSON mapping")
    return mapping_from_dict(data)


def mapping_from_dict(data: Mapping[str, Any]) -> RequestMapping:
    known = {
        "id",
        "category",
        "service_code",
        "created",
        "closed",
        "closed_without_date",
        "timezone",
        "status",
        "location",
        "address",
        "zip",
        "description",
        "attributes",
        "about",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise RequestImportError(
            f"mapping: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    for key in ("id", "created", "location"):
        if key not in data:
            raise RequestImportError(f"mapping: '{key}' is required")
    if ("category" in data) == ("service_code" in data):
        raise RequestImportError("mapping: give either 'category' (a column) or 'service_code'")

    def column_and_format(key: str) -> tuple[str, str]:
        spec = data.get(key)
        if spec is None:
            return "", ""
        if isinstance(spec, str):
            return spec, "%Y-%m-%d"
        if not isinstance(spec, dict) or "column" not in spec:
            raise RequestImportError(f"mapping: '{key}' is a column name or {{column, format}}")
        return str(spec["column"]), str(spec.get("format", "%Y-%m-%d"))

    created, created_format = column_and_format("created")
    closed, closed_format = column_and_format("closed")
    location = data["location"]
    if not isinstance(location, dict) or not (
        {"lat", "lon"} <= set(location) or {"x", "y", "srid"} <= set(location)
    ):
        raise RequestImportError(
            "mapping: 'location' needs lat and lon columns, or x and y columns with srid (EPSG)"
        )
    tz = str(data.get("timezone") or settings.TIME_ZONE)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise RequestImportError(f"mapping: unknown timezone '{tz}'") from exc
    closed_without_date = str(data.get("closed_without_date", "reject"))
    if closed_without_date not in ("reject", "created"):
        raise RequestImportError("mapping: closed_without_date is 'reject' or 'created'")
    description = data.get("description") or []
    if isinstance(description, str):
        description = [description]
    attributes = []
    for code, spec in (data.get("attributes") or {}).items():
        if isinstance(spec, str):
            attributes.append(AttributeMap(code=str(code), column=spec))
        else:
            vm = _value_map(f"attributes.{code}", spec)
            attributes.append(
                AttributeMap(
                    code=str(code),
                    column=vm.column,
                    values=vm.values if spec.get("values") else None,
                    default=vm.default,
                )
            )
    use_xy = "lat" not in location
    return RequestMapping(
        id_column=str(data["id"]),
        created_column=created,
        created_format=created_format,
        closed_column=closed,
        closed_format=closed_format,
        closed_without_date=closed_without_date,
        timezone=tz,
        category=_value_map("category", data["category"]) if "category" in data else None,
        service_code=str(data.get("service_code", "")),
        status=_value_map("status", data["status"]) if "status" in data else None,
        lat_column="" if use_xy else str(location["lat"]),
        lon_column="" if use_xy else str(location["lon"]),
        x_column=str(location["x"]) if use_xy else "",
        y_column=str(location["y"]) if use_xy else "",
        srid=int(location["srid"]) if use_xy else 4326,
        address_column=str(data.get("address", "")),
        zip_column=str(data.get("zip", "")),
        description_columns=tuple(str(c) for c in description),
        attributes=tuple(attributes),
    )


# --- report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reject:
    row: int
    reason: str


@dataclass
class RequestImportReport:
    source: str
    rows: int = 0
    imported: int = 0
    present: int = 0
    rejected: list[Reject] = field(default_factory=list)
    closed_at_created: int = 0
    dry_run: bool = False
    rejects_path: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def reasons(self) -> Counter[str]:
        """Reject counts by reason, the row-specific part (quoted values) left out."""
        return Counter(r.reason.split(": ")[0] for r in self.rejected)

    def summary(self) -> str:
        verb = "Would import" if self.dry_run else "Imported"
        rate = self.rows / self.total_seconds if self.total_seconds else 0.0
        lines = [
            f"{verb} {self.imported:,} of {self.rows:,} rows from {self.source}: "
            f"{self.imported:,} imported + {len(self.rejected):,} rejected + "
            f"{self.present:,} already present = "
            f"{self.imported + len(self.rejected) + self.present:,} "
            f"in {self.total_seconds:.2f} s ({rate:,.0f} rows/s).",
        ]
        for reason, count in self.reasons().most_common():
            lines.append(f"  rejected {count:>6,}  {reason}")
        if self.closed_at_created:
            lines.append(
                f"  {self.closed_at_created:,} closed rows have no closing date: closed at "
                "their creation date"
            )
        if self.rejects_path:
            lines.append(f"Rejected rows (row number, reason, original row): {self.rejects_path}")
        lines.append(
            "Time: " + ", ".join(f"{stage} {secs:.2f} s" for stage, secs in self.seconds.items())
        )
        return "\n".join(lines)


# --- reading and checking ----------------------------------------------------------------------


@dataclass
class _Clean:
    # What the staging table receives, one tuple per clean row, but its place; the row's point
    # is (lons[i], lats[i]).
    stage_rows: list[tuple]
    lons: np.ndarray
    lats: np.ndarray
    rejected: dict[int, str]  # row number → reason
    closed_at_created: int


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise RequestImportError(f"{path} is empty")
            return [h.strip() for h in header], list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RequestImportError(f"{path} cannot be read as UTF-8 CSV: {exc}") from exc


class _Dates:
    """Parse a date column once per distinct text (exports repeat a few thousand dates)."""

    def __init__(self, fmt: str, tz: zoneinfo.ZoneInfo):
        self.fmt = fmt
        self.tz = tz
        self.seen: dict[str, dt.datetime | None] = {}

    def __call__(self, text: str) -> dt.datetime | None:
        if text not in self.seen:
            try:
                self.seen[text] = dt.datetime.strptime(text, self.fmt).replace(tzinfo=self.tz)
            except ValueError:
                self.seen[text] = None
        return self.seen[text]


def _floats(texts: list[str]) -> np.ndarray:
    out = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        if text:
            try:
                out[i] = float(text)
            except ValueError:
                out[i] = np.inf
    return out


def _check_rows(
    header: list[str],
    rows: list[list[str]],
    mapping: RequestMapping,
    *,
    categories: dict[str, int],
    statuses: dict[str, tuple[int, bool]],
) -> _Clean:
    """Check every row in Python without a query; ``categories`` maps service codes to ids,
    ``statuses`` maps status codes to (id, closed)."""
    col = {name: i for i, name in enumerate(header)}
    width = len(header)
    tz = zoneinfo.ZoneInfo(mapping.timezone)
    created_parse = _Dates(mapping.created_format, tz)
    closed_parse = _Dates(mapping.closed_format or mapping.created_format, tz)
    rows = [r + [""] * (width - len(r)) if len(r) < width else r for r in rows]

    def column(name: str) -> list[str]:
        i = col[name]
        return [r[i].strip() for r in rows]

    ids = column(mapping.id_column)
    created = column(mapping.created_column)
    closed = column(mapping.closed_column) if mapping.closed_column else [""] * len(rows)
    n = len(rows)
    category_column = mapping.category.column if mapping.category else ""
    status_column = mapping.status.column if mapping.status else ""
    category_texts = column(category_column) if mapping.category else [""] * n
    status_texts = column(status_column) if mapping.status else [""] * n
    if mapping.lat_column:
        lons, lats = _floats(column(mapping.lon_column)), _floats(column(mapping.lat_column))
    else:
        lons, lats = _to_wgs84(
            _floats(column(mapping.x_column)), _floats(column(mapping.y_column)), mapping.srid
        )
    # Columns first, each distinct value once (exports repeat their categories, statuses,
    # dates, answers, ZIP codes and many addresses), then one light pass over the rows.
    codes = (
        _each_distinct(category_texts, mapping.category.get)
        if mapping.category
        else [mapping.service_code] * n
    )
    # Without a status column, rows start and stay in the initial status (statuses[""]).
    status_codes = _each_distinct(status_texts, mapping.status.get) if mapping.status else [""] * n
    created_at = _each_distinct(created, created_parse)
    closed_at_of = _each_distinct(closed, closed_parse)
    no_coordinates = (np.isnan(lons) | np.isnan(lats)).tolist()
    bad_coordinates = (
        np.isinf(lons) | np.isinf(lats) | (np.abs(lons) > 180) | (np.abs(lats) > 90)
    ).tolist()
    lon_list, lat_list = lons.tolist(), lats.tolist()
    attribute_columns = [column(a.column) for a in mapping.attributes]
    answers = (
        _each_distinct(
            list(zip(*attribute_columns, strict=True)),
            lambda key: _answers(mapping.attributes, key),
        )
        if attribute_columns
        else ["{}"] * n
    )
    description_columns = [column(c) for c in mapping.description_columns]
    descriptions = (
        ["; ".join(filter(None, parts))[:4000] for parts in zip(*description_columns, strict=True)]
        if description_columns
        else [""] * n
    )
    addresses = (
        [a[:ADDRESS_LENGTH] for a in column(mapping.address_column)]
        if mapping.address_column
        else [""] * n
    )
    # The normal form duplicate detection compares, as request_create stores it (~10 µs an
    # address: once per distinct one).
    address_keys = _each_distinct(
        addresses, lambda a: normalize_address(a)[:ADDRESS_LENGTH] if a else ""
    )
    zips = _each_distinct(column(mapping.zip_column), _zip) if mapping.zip_column else [""] * n

    rejected: dict[int, str] = {}
    first_row: dict[str, int] = {}
    stage: list[tuple] = []
    clean: list[int] = []
    closed_at_created = 0
    for i in range(n):
        row_no = i + 2
        public_id = ids[i]
        if not public_id:
            rejected[row_no] = f"no {mapping.id_column}"
            continue
        if public_id in first_row:
            rejected[row_no] = (
                f"repeats {mapping.id_column}: {public_id} is already on row {first_row[public_id]}"
            )
            continue
        first_row[public_id] = row_no

        code = codes[i]
        if code is None:
            rejected[row_no] = f"unknown category: '{category_texts[i]}' in {category_column}"
            continue
        category_id = categories[code]

        status_code = status_codes[i]
        if status_code is None:
            rejected[row_no] = f"unknown status: '{status_texts[i]}' in {status_column}"
            continue
        status_id, is_closed = statuses[status_code]

        requested_at = created_at[i]
        if requested_at is None:
            rejected[row_no] = (
                f"unparseable date: {mapping.created_column} '{created[i]}' "
                f"(expected {mapping.created_format})"
                if created[i]
                else f"no date: {mapping.created_column} is empty"
            )
            continue
        closed_at = None
        if is_closed:
            if closed[i]:
                closed_at = closed_at_of[i]
                if closed_at is None:
                    rejected[row_no] = (
                        f"unparseable date: {mapping.closed_column} '{closed[i]}' "
                        f"(expected {mapping.closed_format})"
                    )
                    continue
                if closed_at < requested_at:
                    rejected[row_no] = (
                        f"closed before created: {mapping.closed_column} {closed[i]} is before "
                        f"{mapping.created_column} {created[i]}"
                    )
                    continue
            elif mapping.closed_without_date == "created":
                closed_at = requested_at
                closed_at_created += 1
            else:
                rejected[row_no] = f"no date: closed status but {mapping.closed_column} is empty"
                continue

        if no_coordinates[i]:
            rejected[row_no] = "no coordinates"
            continue
        if bad_coordinates[i]:
            rejected[row_no] = "bad coordinates: not a longitude/latitude (wrong srid?)"
            continue

        clean.append(i)
        stage.append(
            (
                row_no,
                public_id,
                category_id,
                status_id,
                requested_at,
                closed_at,
                lon_list[i],
                lat_list[i],
                addresses[i],
                address_keys[i],
                zips[i],
                descriptions[i],
                answers[i],
            )
        )
    return _Clean(
        stage_rows=stage,
        lons=lons[clean],
        lats=lats[clean],
        rejected=rejected,
        closed_at_created=closed_at_created,
    )


def _each_distinct(values: list[Any], f: Callable[[Any], Any]) -> list[Any]:
    """``[f(v) for v in values]``, calling ``f`` once per distinct value."""
    done = {v: f(v) for v in set(values)}
    return [done[v] for v in values]


def _answers(attributes: tuple[AttributeMap, ...], texts: tuple[str, ...]) -> str:
    answers: dict[str, str] = {}
    for spec, text in zip(attributes, texts, strict=True):
        if not text:
            continue
        value = text if spec.values is None else spec.values.get(text, spec.default)
        if value is not None:
            answers[spec.code] = value
    return json.dumps(answers)


def _zip(text: str) -> str:
    """ZIP codes that went through a spreadsheet come back as "60614.0"."""
    return text[:-2] if text.endswith(".0") else text


def _to_wgs84(xs: np.ndarray, ys: np.ndarray, srid: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised transform of projected coordinates; NaN/inf markers are kept as they are."""
    try:
        crs = CRS.from_epsg(srid)
    except CRSError as exc:
        raise RequestImportError(f"mapping: srid {srid} is not a known EPSG code") from exc
    lons, lats = xs.copy(), ys.copy()
    usable = np.isfinite(xs) & np.isfinite(ys)
    if usable.any():
        transformer = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
        lons[usable], lats[usable] = transformer.transform(xs[usable], ys[usable])
    return lons, lats


def _lookups(mapping: RequestMapping) -> tuple[dict[str, int], dict[str, tuple[int, bool]], int]:
    """Service codes and status codes the mapping names, checked against the city's config."""
    codes = set(mapping.category.values.values()) if mapping.category else {mapping.service_code}
    if mapping.category and mapping.category.default:
        codes.add(mapping.category.default)
    categories = dict(
        ServiceCategory.objects.filter(service_code__in=codes).values_list("service_code", "id")
    )
    missing = sorted(codes - set(categories))
    if missing:
        raise RequestImportError(
            f"mapping names service code(s) {', '.join(missing)} that this city does not have; "
            "load the city config first (manage.py load_city_config)"
        )
    statuses = {
        code: (pk, state == "closed")
        for code, pk, state in Status.objects.values_list("code", "id", "open311_status")
    }
    initial = Status.objects.filter(is_initial=True).values_list("id", flat=True).first()
    if initial is None:
        raise RequestImportError("no initial status is configured; load a city config first")
    wanted = set(mapping.status.values.values()) if mapping.status else set()
    if mapping.status and mapping.status.default:
        wanted.add(mapping.status.default)
    missing = sorted(wanted - set(statuses))
    if missing:
        raise RequestImportError(
            f"mapping names status code(s) {', '.join(missing)} that this city does not have "
            f"(it has {', '.join(sorted(statuses))})"
        )
    statuses[""] = (initial, False)  # the initial status, for mappings without a status column
    return categories, statuses, initial


def _places_of_rows(lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """The place of each row's point (copied to ``boundary_place``), each distinct point
    placed once: exports repeat locations (74,377 Chicago rows have 48,462 points)."""
    order = np.lexsort((lats, lons))
    x, y = lons[order], lats[order]
    first = np.ones(len(x), dtype=bool)
    first[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    point_of_row = np.empty(len(lons), dtype=np.int64)
    point_of_row[order] = np.cumsum(first) - 1
    found = points_places(lons=x[first], lats=y[first])
    boundaries_sql.places_copy(places=found.places)
    return found.of_point[point_of_row]


def _write_rejects(
    path: Path, header: list[str], rows: list[list[str]], rejected: Mapping[int, str]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "reason", *header])
        for row_no in sorted(rejected):
            writer.writerow([row_no, rejected[row_no], *rows[row_no - 2]])


def import_request_file(
    path: Path | str,
    *,
    mapping: RequestMapping,
    source_name: str | None = None,
    dry_run: bool = False,
    rejects_path: Path | str | None = None,
    progress: Progress | None = None,
) -> RequestImportReport:
    """Import one legacy CSV export as historical requests (channel ``import``).

    Points are stored in EPSG:4326 (projected coordinates are transformed with PROJ). Dates
    without a time are midnight in the mapping's timezone. ``dry_run`` does all the work in the
    database, reports, and rolls back. ``rejects_path`` receives every rejected row.
    """
    say = progress or (lambda _msg: None)
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = seconds.get(stage, 0.0) + now - clock
        clock = now

    path = Path(path)
    if not path.is_file():
        raise RequestImportError(f"{path}: no such file")
    source = (source_name or path.name)[:100]  # the length of ServiceRequest.source
    header, rows = _read_csv(path)
    missing = [c for c in mapping.columns() if c not in header]
    if missing:
        raise RequestImportError(
            f"{path.name} has no column(s) {', '.join(missing)} named by the mapping; "
            f"its columns: {', '.join(header)}"
        )
    say(f"read {len(rows):,} rows from {path.name}")
    categories, statuses, initial = _lookups(mapping)
    lap("read")
    clean = _check_rows(header, rows, mapping, categories=categories, statuses=statuses)
    say(f"checked: {len(clean.stage_rows):,} rows to route, {len(clean.rejected):,} rejected")
    lap("check")

    rules = {
        str(rule.pk): rule.describe()
        for rule in RoutingRule.objects.select_related("category", "layer", "department")
    }
    rejected = dict(clean.rejected)
    try:
        with transaction.atomic():
            # Inside the transaction: the boundaries the rows are routed through are the ones
            # active when they are stored.
            place_of_row = _places_of_rows(clean.lons, clean.lats)
            lap("route points")
            sql.stage_requests(
                rows=(
                    (*row, place)
                    for row, place in zip(clean.stage_rows, place_of_row.tolist(), strict=True)
                )
            )
            lap("stage")
            say("routing and storing")
            outcome = sql.import_staged_requests(
                source=source, initial_status_id=initial, rule_descriptions=rules
            )
            lap("route+insert")
            if dry_run:
                transaction.set_rollback(True)
            else:
                # Check the deferred foreign keys now, inside the timing, not at an unseen commit.
                with connection.cursor() as cursor:
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    except IntegrityError as exc:
        # Another import (or a resident) took one of these ids after we looked: nothing was
        # written, and running again reports those rows as present.
        raise RequestImportError(
            f"{path.name}: another write took an id of this file at the same time; nothing was "
            f"imported, run again ({exc})"
        ) from exc
    lap("commit")
    rejected.update(outcome.rejected)
    report = RequestImportReport(
        source=source,
        rows=len(rows),
        imported=outcome.imported,
        present=len(outcome.present),
        rejected=[Reject(row, rejected[row]) for row in sorted(rejected)],
        closed_at_created=clean.closed_at_created,
        dry_run=dry_run,
        seconds=seconds,
    )
    if rejects_path and rejected:
        _write_rejects(Path(rejects_path), header, rows, rejected)
        report.rejects_path = str(rejects_path)
    accounted = report.imported + report.present + len(report.rejected)
    if accounted != report.rows:  # a bug, never the file's fault: say so loudly
        raise RequestImportError(f"accounting error: {accounted} rows of {report.rows} reported")
    return report


# --- agreement with the source's own labels ----------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    layer: str
    column: str
    compared: int  # imported rows with a label in the column
    agreed: int  # ... whose routed boundary code equals the label
    unrouted: int  # ... that matched no boundary of the layer

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


def routing_agreement(
    path: Path | str,
    *,
    labels: Mapping[str, str],
    id_column: str,
    source: str | None = None,
) -> list[Agreement]:
    """Compare the boundaries stored on imported requests with the labels a file carries.

    ``labels`` maps a layer slug to the file's column holding that layer's code (e.g.
    ``{"wards": "Ward"}``); codes are compared as text after "20.0" → "20". Only rows that were
    imported from ``source`` (default: the file's name) are compared; one SQL statement joins
    the labels with the stored routing.
    """
    path = Path(path)
    header, rows = _read_csv(path)
    needed = [id_column, *labels.values()]
    missing = [c for c in needed if c not in header]
    if missing:
        raise RequestImportError(f"{path.name} has no column(s) {', '.join(missing)}")
    idx = [header.index(c) for c in needed]
    layer_of = list(labels)

    def label_rows() -> Iterable[tuple[str, str, str]]:
        seen: set[str] = set()
        for r in rows:
            if len(r) <= max(idx):
                continue
            public_id = r[idx[0]].strip()
            if public_id in seen:  # a repeated id was imported from its first row only
                continue
            seen.add(public_id)
            for layer, i in zip(layer_of, idx[1:], strict=True):
                text = _code(r[i])
                if public_id and text:
                    yield public_id, layer, text

    with transaction.atomic():
        result = sql.routing_agreement(source=source or path.name, labels=label_rows())
    return [
        Agreement(
            layer=layer,
            column=labels[layer],
            compared=result.get(layer, (0, 0, 0))[0],
            agreed=result.get(layer, (0, 0, 0))[1],
            unrouted=result.get(layer, (0, 0, 0))[2],
        )
        for layer in layer_of
    ]


def _code(text: str) -> str:
    text = text.strip()
    return text[:-2] if text.endswith(".0") else text
