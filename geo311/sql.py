"""SQL the ORM cannot say for service requests and address points: bulk loads by COPY and
set-based routing of whole files.

Every statement is parameterised. Table names are written out (geo311_servicerequest,
boundaries_boundarypart, ...: Django's names for the models) so each statement reads as it runs.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection


def copy_address_points(*, rows: Iterable[tuple[str, str, str, str, str, str]]) -> int:
    """Bulk-write (address_id, address, normalized, zipcode, EWKB hex point in 4326, source).

    COPY instead of INSERTs: a city's address layer is hundreds of thousands of points.
    """
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(
            "COPY geo311_addresspoint (address_id, address, normalized, zipcode, location, source)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


# --- bulk import of historical requests --------------------------------------------------------

STAGE_TABLE = """
DROP TABLE IF EXISTS import_request_stage;
CREATE TEMP TABLE import_request_stage (
    row_no integer PRIMARY KEY,
    public_id text NOT NULL,
    category_id bigint NOT NULL,
    status_id bigint NOT NULL,
    requested_at timestamptz NOT NULL,
    closed_at timestamptz,
    lon float8 NOT NULL,
    lat float8 NOT NULL,
    address text NOT NULL,
    address_key text NOT NULL,
    zipcode text NOT NULL,
    description text NOT NULL,
    attributes text NOT NULL,  -- JSON, parsed once by the INSERT
    place_id integer NOT NULL
) ON COMMIT DROP
"""

STAGE_COLUMNS = (
    "row_no, public_id, category_id, status_id, requested_at, closed_at, lon, lat, address, "
    "address_key, zipcode, description, attributes, place_id"
)
# Binary COPY: psycopg encodes ints, floats and datetimes without formatting them as text
# (a third of the staging time).
STAGE_TYPES = [
    "int4",
    "text",
    "int8",
    "int8",
    "timestamptz",
    "timestamptz",
    "float8",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
]


def stage_requests(*, rows: Iterable[tuple]) -> int:
    """COPY checked rows into a temporary staging table (dropped at commit); see STAGE_TABLE
    for the columns (datetimes aware). ``place_id`` is the row's place in ``boundary_place``
    (boundaries.sql.places_copy)."""
    count = 0
    with connection.cursor() as cursor:
        cursor.execute(STAGE_TABLE)
        raw = cursor.cursor
        with raw.copy(
            f"COPY import_request_stage ({STAGE_COLUMNS}) FROM STDIN (FORMAT binary)"
        ) as copy:
            copy.set_types(STAGE_TYPES)
            for row in rows:
                copy.write_row(row)
                count += 1
        cursor.execute("ANALYZE import_request_stage")
    return count


# The rule for each (place, category) present in the file, with the semantics of
# geo311.routing.route:
#   * refused: outside every active jurisdiction layer (when there is one), or outside a layer
#     the category requires;
#   * rule: the most specific matching rule, category > group > any, then boundary code >
#     layer > no place, then priority (higher wins), then the lowest id (the Python loop keeps
#     the first of equals in ["-priority", "pk"] order); none → the category's default
#     department.
# Rules depend only on the category and the place (boundary_place: the set of boundaries a
# point lies in, found by boundaries.selectors.points_places), so they are chosen a few
# thousand times for a city, not once per request.
ROUTE_PLACES = """
DROP TABLE IF EXISTS import_request_route;
CREATE TEMP TABLE import_request_route ON COMMIT DROP AS
WITH jurisdiction AS (
    SELECT array_agg(v.layer_id) AS layer_ids, string_agg(l.slug, ', ') AS slugs
    FROM boundaries_layerversion v JOIN boundaries_layer l ON l.id = v.layer_id
    WHERE v.status = 'active' AND l.kind = 'jurisdiction'
), place AS (
    SELECT pp.place_id,
           coalesce(array_agg(DISTINCT v.layer_id) FILTER (WHERE b.id IS NOT NULL), '{}')
               AS layer_ids,
           coalesce(array_agg(v.layer_id::text || ':' || b.code) FILTER (WHERE b.id IS NOT NULL),
                    '{}') AS codes,
           coalesce(jsonb_agg(jsonb_build_object('layer', l.slug, 'code', b.code, 'name', b.name,
                                                 'version', v.number) ORDER BY l.slug, b.code)
                    FILTER (WHERE b.id IS NOT NULL), '[]') AS boundaries
    FROM boundary_place pp
    LEFT JOIN LATERAL unnest(pp.boundary_ids) AS u(boundary_id) ON true
    LEFT JOIN boundaries_boundary b ON b.id = u.boundary_id
    LEFT JOIN boundaries_layerversion v ON v.id = b.version_id
    LEFT JOIN boundaries_layer l ON l.id = v.layer_id
    GROUP BY pp.place_id
), combo AS (
    SELECT DISTINCT place_id, category_id FROM import_request_stage
)
SELECT c.place_id, c.category_id,
       CASE
           WHEN j.layer_ids IS NOT NULL AND NOT pl.layer_ids && j.layer_ids
               THEN 'outside the jurisdiction: in no boundary of ' || j.slugs
           WHEN req.missing IS NOT NULL
               THEN 'outside a required layer: in no boundary of ' || req.missing
                    || ', so ' || cat.service_code || ' cannot be routed there'
       END AS reason,
       r.id AS rule_id,
       d.id AS department_id,
       r.team_id,
       jsonb_build_object(
           'rule_id', r.id,
           'rule', coalesce(%(rules)s::jsonb ->> r.id::text, 'category default department'),
           'department', d.slug,
           'team', t.slug,
           'boundaries', pl.boundaries
       ) AS routing
FROM combo c
JOIN place pl ON pl.place_id = c.place_id
JOIN geo311_servicecategory cat ON cat.id = c.category_id
CROSS JOIN jurisdiction j
CROSS JOIN LATERAL (
    SELECT string_agg(l.slug, ', ' ORDER BY l.slug) AS missing
    FROM geo311_servicecategory_required_layers rl
    JOIN boundaries_layer l ON l.id = rl.layer_id
    WHERE rl.servicecategory_id = c.category_id AND NOT rl.layer_id = ANY (pl.layer_ids)
) req
LEFT JOIN LATERAL (
    SELECT rr.id, rr.department_id, rr.team_id
    FROM geo311_routingrule rr
    WHERE (rr.category_id = cat.id
           OR (rr.category_id IS NULL AND rr."group" IN (cat."group", '')))
      AND (rr.layer_id IS NULL OR rr.layer_id = ANY (pl.layer_ids))
      AND (rr.boundary_code = ''
           OR rr.layer_id::text || ':' || rr.boundary_code = ANY (pl.codes))
    ORDER BY (CASE WHEN rr.category_id IS NOT NULL THEN 2 WHEN rr."group" <> '' THEN 1
                   ELSE 0 END) * 3
             + (CASE WHEN rr.boundary_code <> '' THEN 2 WHEN rr.layer_id IS NOT NULL THEN 1
                     ELSE 0 END) DESC,
             rr.priority DESC, rr.id
    LIMIT 1
) r ON true
JOIN geo311_department d ON d.id = coalesce(r.department_id, cat.default_department_id)
LEFT JOIN geo311_team t ON t.id = r.team_id;
ANALYZE import_request_route;
"""

# Every staged row, routed, in one statement: rows whose public_id exists are reported (already
# present from this source, or rejected when another source holds the id), refused rows are
# rejected with the reason, the rest are inserted with their first status event (the initial
# status at creation) and, when their status is another, a second event (at closing, if closed).
# Imported requests get tokens nobody holds (no client posted them): as unguessable as any (122
# random bits), but led by the import's start time and the row number, so the unique index on
# tokens grows at one end instead of splitting random pages (~13% less CPU for the INSERT,
# measured on the Chicago file).
IMPORT_STAGED = """
WITH outcome AS (
    SELECT s.*, r.reason, r.rule_id, r.department_id, r.team_id, r.routing,
           e.id AS existing_id, e.source AS existing_source
    FROM import_request_stage s
    JOIN import_request_route r ON r.place_id = s.place_id AND r.category_id = s.category_id
    LEFT JOIN geo311_servicerequest e ON e.public_id = s.public_id
), ins AS (
    INSERT INTO geo311_servicerequest (
        public_id, token, category_id, department_id, team_id, status_id, location,
        address, address_key, address_id, zipcode, description, attributes, media_url, channel,
        service_notice, reporter_first_name, reporter_last_name, reporter_email,
        reporter_phone, reporter_device_id, reporter_account_id, routing_rule_id, routing,
        requested_at, updated_at, expected_at, closed_at, source
    )
    SELECT public_id,
           to_hex((extract(epoch FROM transaction_timestamp()) * 1000000)::bigint)
               || lpad(to_hex(row_no), 8, '0') || replace(gen_random_uuid()::text, '-', ''),
           category_id, department_id, team_id, status_id, ST_SetSRID(ST_MakePoint(lon, lat), 4326),
           left(address, 300), left(address_key, 300), '', left(zipcode, 20), description,
           attributes::jsonb, '', 'import', '', '', '', '', '', '', '', rule_id, routing,
           requested_at, coalesce(closed_at, requested_at), NULL, closed_at, %(source)s
    FROM outcome
    WHERE existing_id IS NULL AND reason IS NULL
    ORDER BY row_no
    RETURNING id, status_id, requested_at, closed_at
), events AS (
    INSERT INTO geo311_statusevent (request_id, status_id, note, public, created_at, actor)
    SELECT id, %(initial)s, 'Received', true, requested_at, %(actor)s FROM ins
    UNION ALL
    SELECT id, status_id, '', true, coalesce(closed_at, requested_at), %(actor)s
    FROM ins WHERE status_id <> %(initial)s
    RETURNING 1
)
SELECT 'present', row_no, existing_source FROM outcome
WHERE existing_id IS NOT NULL AND existing_source = %(source)s
UNION ALL
SELECT 'rejected', row_no, public_id || ' is already the id of a request from '
       || coalesce(nullif(existing_source, ''), 'geo311 itself')
FROM outcome WHERE existing_id IS NOT NULL AND existing_source <> %(source)s
UNION ALL
SELECT 'rejected', row_no, reason FROM outcome WHERE existing_id IS NULL AND reason IS NOT NULL
UNION ALL
SELECT 'imported', (SELECT count(*) FROM ins)::int, NULL
UNION ALL
SELECT 'events', (SELECT count(*) FROM events)::int, NULL
"""


@dataclass
class StagedImport:
    imported: int = 0
    events: int = 0
    present: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)


def import_staged_requests(
    *, source: str, initial_status_id: int, rule_descriptions: dict[str, str]
) -> StagedImport:
    """Route and insert every staged row (see ROUTE_PLACES and IMPORT_STAGED); must run in the
    transaction that staged them and copied their places. ``rule_descriptions`` maps rule ids
    to RoutingRule.describe() so the stored routing reads as the Python router writes it."""
    result = StagedImport()
    with connection.cursor() as cursor:
        # JIT would compile these plans for longer than they run.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(ROUTE_PLACES, {"rules": json.dumps(rule_descriptions)})
        cursor.execute(
            IMPORT_STAGED,
            {"source": source, "initial": initial_status_id, "actor": f"import: {source}"[:200]},
        )
        for kind, number, text in cursor.fetchall():
            if kind == "present":
                result.present.append(number)
            elif kind == "rejected":
                result.rejected[number] = text
            elif kind == "imported":
                result.imported = number
            else:
                result.events = number
    return result


# How often the boundaries frozen on imported requests agree with labels the source file
# carries (e.g. the ward the city itself assigned): one join of the labels with the routing.
AGREEMENT = """
SELECT lb.layer,
       count(*) AS compared,
       count(*) FILTER (WHERE lb.code = ANY (m.codes)) AS agreed,
       count(*) FILTER (WHERE m.codes IS NULL) AS unrouted
FROM import_agreement_label lb
JOIN geo311_servicerequest r ON r.public_id = lb.public_id AND r.source = %(source)s
CROSS JOIN LATERAL (
    SELECT array_agg(b->>'code') AS codes
    FROM jsonb_array_elements(r.routing->'boundaries') b
    WHERE b->>'layer' = lb.layer
) m
GROUP BY lb.layer
"""


def routing_agreement(
    *, source: str, labels: Iterable[tuple[str, str, str]]
) -> dict[str, tuple[int, int, int]]:
    """(public_id, layer slug, expected code) labels → {layer: (compared, agreed, unrouted)}
    over the requests imported from ``source``. Runs in the caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TABLE IF EXISTS import_agreement_label;"
            "CREATE TEMP TABLE import_agreement_label "
            "(public_id text, layer text, code text) ON COMMIT DROP"
        )
        with cursor.cursor.copy(
            "COPY import_agreement_label (public_id, layer, code) FROM STDIN"
        ) as copy:
            for row in labels:
                copy.write_row(row)
        cursor.execute("ANALYZE import_agreement_label")
        cursor.execute(AGREEMENT, {"source": source})
        return {layer: (c, a, u) for layer, c, a, u in cursor.fetchall()}
