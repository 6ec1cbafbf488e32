"""The statements of filing a request, as prepared statements (``geo311.prepared``): every Open311
POST runs each of them once, and the ORM spent longer building them than PostgreSQL running them.

- ``config_generation``: the number the city's configuration is at (migration 0005), which tells
  a process whether its copy (``geo311.cache``) is current;
- ``areas_at``: the boundaries of the active versions that cover a point, with the active
  jurisdiction layers and the configuration's generation, in one statement;
- ``request_insert``: the request, its first status event and that event's notification job in
  one statement (one round trip).

Points are WGS84 (EPSG:4326).
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.gis.db.models import PointField
from django.db import connection
from django.db.models import Field, Model
from django.db.models.expressions import DatabaseDefault

from .models import ServiceRequest, StatusEvent
from .notifications.sql import FAN_OUT_JOBS_FOR_EVENTS
from .prepared import fetch_all

CONFIG_GENERATION = "SELECT generation FROM geo311_config_generation"

# The jurisdiction layers and the configuration's generation come on every row (and on the one
# row there is when nothing covers the point), so that neither "outside the area this service
# covers" nor "is this process's configuration current?" needs a query of its own. The point is
# built in SQL from two floats: the GiST index on the pieces' geometry finds the candidates.
AREAS_AT = """
SELECT o.generation, o.outlines, m.layer_id, m.slug, m.code, m.name, m.number
FROM (SELECT (SELECT generation FROM geo311_config_generation) AS generation, array(
    SELECT v.layer_id FROM boundaries_layerversion v
    JOIN boundaries_layer l ON l.id = v.layer_id
    WHERE v.status = 'active' AND l.kind = 'jurisdiction') AS outlines) o
LEFT JOIN LATERAL (
    SELECT v.layer_id, l.slug, b.code, b.name, v.number
    FROM boundaries_boundary b
    JOIN boundaries_layerversion v ON v.id = b.version_id
    JOIN boundaries_layer l ON l.id = v.layer_id
    WHERE b.id IN (
        SELECT p.boundary_id FROM boundaries_boundarypart p
        JOIN boundaries_layerversion pv ON pv.id = p.version_id AND pv.status = 'active'
        WHERE ST_Covers(p.geom, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)))
) m ON true
ORDER BY m.slug, m.code
"""


def config_generation() -> int:
    rows = fetch_all(CONFIG_GENERATION, ())
    return int(rows[0][0]) if rows else 0


@dataclass(frozen=True)
class AreasAt:
    generation: int  # of the configuration, as this statement saw it
    outline_layer_ids: set[int]  # the active jurisdiction layers
    areas: list[tuple[int, str, str, str, int]]  # (layer id, slug, code, name, version number)


def areas_at(*, lon: float, lat: float) -> AreasAt:
    """Every active boundary covering the point, by layer slug and code, with the active
    jurisdiction layers and the configuration's generation number."""
    rows = fetch_all(AREAS_AT, {"lon": lon, "lat": lat})
    generation, outlines = rows[0][0] or 0, rows[0][1]
    return AreasAt(int(generation), set(outlines), [row[2:] for row in rows if row[2] is not None])


# --- the request and its first event in one statement ------------------------------------------


def _columns(model: type[Model], obj: Model, *, skip: tuple[str, ...]) -> list[Field]:
    """The fields an INSERT of ``obj`` names: not the primary key, not ``skip``, and not those
    left to their database default."""
    return [
        f
        for f in model._meta.concrete_fields
        if not f.primary_key
        and f.attname not in skip
        and not isinstance(getattr(obj, f.attname), DatabaseDefault)
    ]


def _placeholder(field: Field) -> str:
    # A point goes as two floats: GEOS's EWKB adapter cost more than the rest of the row.
    if isinstance(field, PointField):
        return f"ST_SetSRID(ST_MakePoint(%s, %s), {int(field.srid)})"
    return "%s"


def _values(fields: list[Field], obj: Model) -> list[Any]:
    """What the ORM's INSERT sends for ``fields``: pre_save (auto_now and the like), then the
    database form (a point as its two coordinates in the field's SRID)."""
    values: list[Any] = []
    for f in fields:
        value = f.pre_save(obj, True)
        if isinstance(f, PointField):
            if value.srid not in (None, f.srid):
                value = value.transform(f.srid, clone=True)
            values += value.coords[:2]
        else:
            values.append(f.get_db_prep_save(value, connection))
    return values


_STATEMENTS: dict[tuple[str, ...], str] = {}


def _insert_statement(request_fields: list[Field], event_fields: list[Field]) -> str:
    key = tuple(f.attname for f in request_fields) + ("|",) + tuple(f.attname for f in event_fields)
    statement = _STATEMENTS.get(key)
    if statement is None:
        quote = connection.ops.quote_name
        request_columns = ", ".join(quote(f.column) for f in request_fields)
        event_columns = ", ".join(quote(f.column) for f in event_fields)
        request_values = ", ".join(_placeholder(f) for f in request_fields)
        event_values = ", ".join(_placeholder(f) for f in event_fields)
        # Names from the models' metadata, quoted; every value is a parameter.
        statement = (
            f"WITH r AS (INSERT INTO {quote(ServiceRequest._meta.db_table)} "  # noqa: S608
            f"({request_columns}) VALUES ({request_values}) RETURNING id, public_id), "
            f"ev AS (INSERT INTO {quote(StatusEvent._meta.db_table)} (request_id, {event_columns}) "
            f"SELECT r.id, {event_values} FROM r RETURNING id, request_id), "
            f"jobs AS ({FAN_OUT_JOBS_FOR_EVENTS}) "
            "SELECT r.id, r.public_id, ev.id FROM r, ev"
        )
        _STATEMENTS[key] = statement
    return statement


def request_insert(*, request: ServiceRequest, event: StatusEvent) -> None:
    """INSERT ``request``, its first ``event`` (whose request is ``request``) and the event's
    notification job (what ``notifications.services.event_notify`` queues) in one statement,
    as ``Model.save()`` would write each; sets their ids and the request's ``public_id`` (a
    database default). Call inside the transaction of the change."""
    request_fields = _columns(ServiceRequest, request, skip=())
    event_fields = _columns(StatusEvent, event, skip=("request_id",))
    statement = _insert_statement(request_fields, event_fields)
    params = _values(request_fields, request) + _values(event_fields, event)
    ((request_id, public_id, event_id),) = fetch_all(statement, params)
    request.pk, request.public_id = request_id, public_id
    event.pk, event.request_id = event_id, request_id
    for obj in (request, event):
        obj._state.adding = False
        obj._state.db = connection.alias
