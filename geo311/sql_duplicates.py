"""The duplicate-candidate query: SQL the ORM cannot say (a per-probe LATERAL search with a
score computed over a window), kept apart from ``geo311.sql``, which the request importer owns.

One statement template serves both callers, so the replay that evaluates the scorer on a city's
history runs exactly the query that answers residents:

- ``CANDIDATES_ONE``: one probe from parameters (the nearby API, filing a request);
- ``CANDIDATES_TABLE``: every row of the temporary table ``duplicate_probe`` (the evaluation
  replays a whole export in one statement; see ``probes_create``).

Units: distances in metres on the spheroid (geography), times in days; the probe point is WGS84.
The score is a logistic function of the features (weights are parameters, see
``geo311.duplicates.Weights``), so it lies in (0, 1) and reads as a probability.
"""

import re
from collections.abc import Iterable

from django.db import connection

from .prepared import fetch_all

# A candidate "came before" the probe when it was requested earlier, or at the same instant with
# a smaller public id: exports often carry dates without times, and the city's own numbering
# orders a day's requests. Ids compare by length first so numeric ids sort as numbers. A probe
# without a public id (a request not yet filed) sees everything requested up to its time.
#
# A request merged into another is never a candidate: its original is the one to follow or to
# link to (staff merges keep every link pointing at an original).
#
# Every probe whose category exists gives at least one row: its category's policy, then the
# candidate's columns (all NULL when it has none), so one query also says whether the category
# exists and what its policy is.
_TEMPLATE = """
SELECT p.probe_id, pc.service_code AS probe_service_code, pc."group" AS probe_group,
       cfg.radius_m, cfg.window_days, cfg.likely_score, c.*
FROM {probes} p
JOIN geo311_servicecategory pc ON pc.id = p.category_id
CROSS JOIN LATERAL (
    SELECT coalesce(pc.duplicate_radius_m::float8, %(radius_m)s::float8) AS radius_m,
           coalesce(pc.duplicate_window_days, %(window_days)s::int) AS window_days,
           coalesce(pc.duplicate_likely_score, %(likely_score)s::float8) AS likely_score,
           make_interval(days => coalesce(pc.duplicate_window_days, %(window_days)s::int))
               AS window,
           make_interval(secs => %(recently_closed_days)s::float8 * 86400.0) AS recently_closed,
           array(SELECT k.id FROM geo311_servicecategory k
                 WHERE k.id = pc.id OR (pc."group" <> '' AND k."group" = pc."group")) AS categories
) cfg
LEFT JOIN LATERAL (
    SELECT f.*,
           1.0 / (1.0 + exp(-(
               %(w_bias)s::float8
               + %(w_distance)s::float8 * ln(1.0 + f.distance_m / 10.0)
               + %(w_days)s::float8 * ln(1.0 + f.days)
               + %(w_open)s::float8 * f.is_open::int
               + %(w_recently_closed)s::float8 * coalesce(exp(-f.closed_days), 0.0)
               + %(w_same_address)s::float8 * f.same_address::int
               + %(w_address_mismatch)s::float8
                 * CASE WHEN f.address_known THEN 1.0 - f.address_similarity ELSE 0.0 END
               + %(w_other_category)s::float8 * (NOT f.same_category)::int
               + %(w_description_similarity)s::float8 * f.description_similarity
               + %(w_nearby)s::float8 * ln(f.nearby)
           ))) AS score
    FROM (
        SELECT r.id, r.public_id, r.category_id, k.service_code, k.name AS service_name,
               k.sensitive, r.status_id, s.open311_status AS status, r.requested_at,
               r.closed_at, r.address,
               ST_X(r.location) AS lon, ST_Y(r.location) AS lat,
               ST_Distance(r.location::geography(Point, 4326), p.geog) AS distance_m,
               greatest(extract(epoch FROM p.at - r.requested_at)::float8 / 86400.0, 0.0) AS days,
               (r.closed_at IS NULL OR r.closed_at > p.at) AS is_open,
               CASE WHEN r.closed_at <= p.at
                    THEN extract(epoch FROM p.at - r.closed_at)::float8 / 86400.0 END
                   AS closed_days,
               (p.address_key <> '' AND r.address_key <> '') AS address_known,
               (p.address_key <> '' AND r.address_key = p.address_key) AS same_address,
               CASE WHEN p.address_key <> '' AND r.address_key <> ''
                    THEN similarity(r.address_key, p.address_key)::float8 ELSE 0.0 END
                   AS address_similarity,
               r.category_id = p.category_id AS same_category,
               CASE WHEN p.description <> '' AND r.description <> ''
                    THEN similarity(left(r.description, 500), left(p.description, 500))::float8
                    ELSE 0.0 END AS description_similarity,
               count(*) OVER () AS nearby
        FROM geo311_servicerequest r
        JOIN geo311_servicecategory k ON k.id = r.category_id
        JOIN geo311_status s ON s.id = r.status_id
        WHERE ST_DWithin(r.location::geography(Point, 4326), p.geog, cfg.radius_m)
          AND r.category_id = ANY (cfg.categories)
          AND r.requested_at >= p.at - cfg.window
          AND r.requested_at <= p.at
          AND (r.requested_at < p.at OR p.public_id IS NULL
               OR (length(r.public_id), r.public_id) < (length(p.public_id), p.public_id))
          AND (r.closed_at IS NULL OR r.closed_at > p.at - cfg.recently_closed)
          AND r.id IS DISTINCT FROM p.exclude_id
          AND r.duplicate_of_id IS NULL
    ) f
    ORDER BY score DESC, f.distance_m, f.requested_at DESC, f.id
    LIMIT %(limit)s::int
) c ON true
ORDER BY p.probe_id, c.score DESC, c.distance_m, c.requested_at DESC, c.id
"""

# The category by id, or an active one by service code (the nearby API: one query in all).
_ONE_PROBE = """(
    SELECT 0::bigint AS probe_id,
           coalesce(%(category_id)s::bigint,
                    (SELECT id FROM geo311_servicecategory
                     WHERE service_code = %(service_code)s::text AND active)) AS category_id,
           ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS geog,
           %(at)s::timestamptz AS at, %(public_id)s::text AS public_id,
           %(address_key)s::text AS address_key, %(description)s::text AS description,
           %(exclude_id)s::bigint AS exclude_id
)"""


def _dedent(statement: str) -> str:
    """The statement without its indentation: psycopg caches the parsing of statements up to
    4 KB only, and this one runs on every nearby lookup."""
    return re.sub(r"\n\s+", "\n", statement).strip()


CANDIDATES_ONE = _dedent(_TEMPLATE.format(probes=_ONE_PROBE))
CANDIDATES_TABLE = _dedent(_TEMPLATE.format(probes="duplicate_probe"))

# Output columns after probe_id, in order (what ``geo311.duplicates`` reads): the probe's
# category and policy, then the candidate (NULLs when there is none).
PROBE_COLUMNS = ("probe_service_code", "probe_group", "radius_m", "window_days", "likely_score")
COLUMNS = (
    "id",
    "public_id",
    "category_id",
    "service_code",
    "service_name",
    "sensitive",
    "status_id",
    "status",
    "requested_at",
    "closed_at",
    "address",
    "lon",
    "lat",
    "distance_m",
    "days",
    "is_open",
    "closed_days",
    "address_known",
    "same_address",
    "address_similarity",
    "same_category",
    "description_similarity",
    "nearby",
    "score",
)

PROBE_TABLE = """
DROP TABLE IF EXISTS duplicate_probe;
CREATE TEMP TABLE duplicate_probe (
    probe_id bigint PRIMARY KEY,
    category_id bigint NOT NULL,
    geog geography(Point, 4326) NOT NULL,
    at timestamptz NOT NULL,
    public_id text,
    address_key text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    exclude_id bigint
) ON COMMIT DROP
"""

# Every stored request as a probe of its own history: at its requested time, seeing what came
# before it (see the ordering note above), itself excluded.
PROBES_FROM_REQUESTS = """
INSERT INTO duplicate_probe (probe_id, category_id, geog, at, public_id, address_key,
                             description, exclude_id)
SELECT r.id, r.category_id, r.location::geography(Point, 4326), r.requested_at, r.public_id,
       r.address_key, r.description, r.id
FROM geo311_servicerequest r
WHERE r.source = ANY (%(sources)s)
"""


def candidates_one(*, params: dict) -> list[tuple]:
    """Run ``CANDIDATES_ONE``; rows are (probe_id, *PROBE_COLUMNS, *COLUMNS).

    This runs on every nearby lookup and every submit. Planned afresh, it spends about as long
    in the planner as in the executor: it is a prepared statement (``geo311.prepared``).
    """
    return fetch_all(CANDIDATES_ONE, params)


def probes_from_requests(*, sources: Iterable[str]) -> int:
    """Fill ``duplicate_probe`` (a temporary table dropped at commit: call inside a transaction)
    with every request imported from ``sources``; returns the number of probes."""
    with connection.cursor() as cursor:
        cursor.execute(PROBE_TABLE)
        cursor.execute(PROBES_FROM_REQUESTS, {"sources": list(sources)})
        count = cursor.rowcount
        cursor.execute("ANALYZE duplicate_probe")
    return count


def candidates_table(*, params: dict) -> list[tuple]:
    """Run ``CANDIDATES_TABLE`` over ``duplicate_probe``; rows are
    (probe_id, *PROBE_COLUMNS, *COLUMNS)."""
    with connection.cursor() as cursor:
        cursor.execute(CANDIDATES_TABLE, params)
        return cursor.fetchall()


# The normal form of addresses is computed in Python (geo311.addresses); rows written by bulk
# SQL (imports) get theirs here, in batches of one UPDATE ... FROM (VALUES ...) each.
ADDRESS_KEYS_MISSING = """
SELECT id, address FROM geo311_servicerequest
WHERE address_key = '' AND address <> '' AND id > %(after)s
ORDER BY id LIMIT %(batch)s
"""

ADDRESS_KEYS_SET = """
UPDATE geo311_servicerequest r SET address_key = v.key
FROM unnest(%(ids)s::bigint[], %(keys)s::text[]) AS v(id, key)
WHERE r.id = v.id
"""


def address_keys_missing(*, after: int, batch: int) -> list[tuple[int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(ADDRESS_KEYS_MISSING, {"after": after, "batch": batch})
        return cursor.fetchall()


def address_keys_set(*, ids: list[int], keys: list[str]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(ADDRESS_KEYS_SET, {"ids": ids, "keys": keys})
        return cursor.rowcount
