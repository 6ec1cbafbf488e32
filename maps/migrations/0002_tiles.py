"""Vector tiles: generation numbers per tile layer, the request cell counts that low-zoom request
tiles draw, and the server-side tile cache (``maps.tiles``, ``maps.sql_tiles``).

- ``maps_tile_generation``: one number per tile layer ("requests", "boundaries", "hotspots"),
  moved by statement-level triggers inside the writing transaction, so a tile cached under a
  number is never served once the data under it has committed a change (the number is read in
  the same statement as the cached tile).
- ``maps_request_cell``: requests counted per square cell of an EPSG:3857 grid aligned with the
  XYZ tiles (level L: the world is 2^L cells wide; levels 13-17, 4.9 km down to 306 m), per
  category, status and month (of ``requested_at`` in the city's time zone). Kept current by
  statement-level triggers on ``geo311_servicerequest`` reading the transition tables: one
  grouped upsert per statement, so a bulk import pays once per statement, not per row.
  Sensitive categories are counted at their public location (``geo311_public_location``), so a
  cell never tells more than the published point does.
- ``maps_request_cell_config``: the grid and time zone the counts were made with;
  ``maps_request_cells_rebuild(grid_m, time_zone)`` recounts everything (the backfill below,
  and ``manage.py tiles_rebuild`` after GEO311_SENSITIVE_GRID_M or GEO311_TIME_ZONE changes).
- The trigger functions run with ``jit = off``: the planner's cost estimate of the upsert
  (PostGIS transforms) passes jit_above_cost, and compiling it took a second for a one-row
  INSERT.
- ``maps_tile_cache``: tile bytes by (layer, z, x, y, filter key) and the generation they were
  made at.

None of these tables are models: test flushes (TRUNCATE of the model tables) leave the
generation rows alone; a TRUNCATE of the requests empties the counts by its own trigger.
"""

from django.conf import settings
from django.db import migrations

LEVELS = "13, 17"  # generate_series bounds: the stored cell levels (maps.sql_tiles.CELL_LEVELS)

# The rows that leave (-1) and enter (+1) the counts on an UPDATE. One that moves none of the
# counted columns (most: assignments, notes, updated_at) costs this join and nothing more; a
# moved point still moves the number, since z >= 13 tiles draw points.
UPDATED = """
SELECT d.* FROM old_rows o JOIN new_rows n ON n.id = o.id
CROSS JOIN LATERAL (VALUES
    (o.category_id, o.status_id, o.location, o.requested_at, -1),
    (n.category_id, n.status_id, n.location, n.requested_at, 1)
) d (category_id, status_id, location, requested_at, sign)
WHERE (o.category_id, o.status_id, o.requested_at) IS DISTINCT FROM
      (n.category_id, n.status_id, n.requested_at)
   OR NOT ST_OrderingEquals(o.location, n.location)
"""


def _upsert(delta: str) -> str:
    """One grouped upsert of the statement's changes into the counts; ``changed`` is set to
    the number of changed rows (0: nothing tiles draw has moved)."""
    return f"""WITH delta AS ({delta}), counted AS (
            INSERT INTO maps_request_cell AS c (level, cx, cy, category_id, status_id, month, n)
            SELECT k.level, k.cx, k.cy, d.category_id, d.status_id, k.month, sum(d.sign)
            FROM delta d
            JOIN geo311_servicecategory cat ON cat.id = d.category_id
            CROSS JOIN LATERAL maps_request_cell_keys(d.location, d.requested_at, cat.sensitive) k
            GROUP BY 1, 2, 3, 4, 5, 6
            HAVING sum(d.sign) <> 0
            ORDER BY 1, 2, 3, 4, 5, 6
            ON CONFLICT (level, cx, cy, category_id, status_id, month)
            DO UPDATE SET n = c.n + EXCLUDED.n
        )
        SELECT count(*) INTO changed FROM delta;"""


CREATE = f"""
CREATE SEQUENCE maps_tile_generation_seq;
CREATE TABLE maps_tile_generation (
    layer text PRIMARY KEY,
    generation bigint NOT NULL
);
INSERT INTO maps_tile_generation (layer, generation) VALUES
    ('requests', nextval('maps_tile_generation_seq')),
    ('boundaries', nextval('maps_tile_generation_seq')),
    ('hotspots', nextval('maps_tile_generation_seq'));

CREATE FUNCTION maps_tile_bump(tile_layer text) RETURNS void LANGUAGE sql AS $$
    UPDATE maps_tile_generation SET generation = nextval('maps_tile_generation_seq')
    WHERE layer = tile_layer
$$;

-- For the tables other tile layers read: any change moves the layer's number.
CREATE FUNCTION maps_tile_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM maps_tile_bump(TG_ARGV[0]);
    RETURN NULL;
END
$$;

CREATE UNLOGGED TABLE maps_tile_cache (
    layer text NOT NULL,
    z smallint NOT NULL,
    x integer NOT NULL,
    y integer NOT NULL,
    filter_key text NOT NULL,
    generation bigint NOT NULL,
    etag text NOT NULL,
    tile bytea NOT NULL,
    made_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layer, z, x, y, filter_key)
);

CREATE TABLE maps_request_cell_config (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    grid_m double precision NOT NULL,
    time_zone text NOT NULL
);

CREATE TABLE maps_request_cell (
    level smallint NOT NULL,
    cx integer NOT NULL,
    cy integer NOT NULL,
    category_id bigint NOT NULL,
    status_id bigint NOT NULL,
    month date NOT NULL,
    n integer NOT NULL,
    PRIMARY KEY (level, cx, cy, category_id, status_id, month)
);

-- The cells (one per stored level) and month a request is counted in. cy counts down from the
-- north edge, as XYZ tile rows do: level z + 5 holds tile (z, x, y) in cx 32x .. 32x + 31.
CREATE FUNCTION maps_request_cell_keys(
    location geometry, requested_at timestamptz, sensitive boolean
) RETURNS TABLE (level smallint, cx integer, cy integer, month date)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT l::smallint,
           floor((ST_X(q.p) + 20037508.342789244) / (40075016.685578488 / 2 ^ l))::integer,
           floor((20037508.342789244 - ST_Y(q.p)) / (40075016.685578488 / 2 ^ l))::integer,
           q.m
    FROM maps_request_cell_config cfg
    CROSS JOIN LATERAL (
        SELECT ST_Transform(geo311_public_location(location, sensitive, cfg.grid_m), 3857) AS p,
               date_trunc('month', requested_at AT TIME ZONE cfg.time_zone)::date AS m
    ) q
    CROSS JOIN generate_series({LEVELS}) l
$$;

CREATE FUNCTION maps_request_cells_changed() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    changed bigint;
BEGIN
    -- Each branch names only the transition tables its trigger has (PL/pgSQL plans a
    -- statement when it first runs it).
    IF TG_OP = 'INSERT' THEN
        {_upsert("SELECT category_id, status_id, location, requested_at, 1 AS sign FROM new_rows")}
    ELSIF TG_OP = 'DELETE' THEN
        {_upsert("SELECT category_id, status_id, location, requested_at, -1 AS sign FROM old_rows")}
    ELSE
        {_upsert(UPDATED)}
    END IF;
    IF changed > 0 THEN
        PERFORM maps_tile_bump('requests');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION maps_request_cells_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE maps_request_cell;
    PERFORM maps_tile_bump('requests');
    RETURN NULL;
END
$$;

-- A category that becomes (or stops being) sensitive moves its requests' public locations:
-- its counts are made again.
CREATE FUNCTION maps_request_cells_category_changed() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    DELETE FROM maps_request_cell c USING old_rows o JOIN new_rows n ON n.id = o.id
    WHERE c.category_id = n.id AND o.sensitive IS DISTINCT FROM n.sensitive;
    INSERT INTO maps_request_cell (level, cx, cy, category_id, status_id, month, n)
    SELECT k.level, k.cx, k.cy, r.category_id, r.status_id, k.month, count(*)
    FROM old_rows o
    JOIN new_rows cat ON cat.id = o.id AND o.sensitive IS DISTINCT FROM cat.sensitive
    JOIN geo311_servicerequest r ON r.category_id = cat.id
    CROSS JOIN LATERAL maps_request_cell_keys(r.location, r.requested_at, cat.sensitive) k
    GROUP BY 1, 2, 3, 4, 5, 6;
    PERFORM maps_tile_bump('requests');
    RETURN NULL;
END
$$;

CREATE FUNCTION maps_request_cells_rebuild(grid_m double precision, time_zone text)
RETURNS bigint LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    made bigint;
BEGIN
    INSERT INTO maps_request_cell_config (id, grid_m, time_zone) VALUES (1, grid_m, time_zone)
    ON CONFLICT (id) DO UPDATE SET grid_m = EXCLUDED.grid_m, time_zone = EXCLUDED.time_zone;
    ANALYZE maps_request_cell_config;
    TRUNCATE maps_request_cell;
    INSERT INTO maps_request_cell (level, cx, cy, category_id, status_id, month, n)
    SELECT k.level, k.cx, k.cy, r.category_id, r.status_id, k.month, count(*)
    FROM geo311_servicerequest r
    JOIN geo311_servicecategory cat ON cat.id = r.category_id
    CROSS JOIN LATERAL maps_request_cell_keys(r.location, r.requested_at, cat.sensitive) k
    GROUP BY 1, 2, 3, 4, 5, 6;
    GET DIAGNOSTICS made = ROW_COUNT;
    PERFORM maps_tile_bump('requests');
    RETURN made;
END
$$;

CREATE TRIGGER maps_request_cells_inserted AFTER INSERT ON geo311_servicerequest
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION maps_request_cells_changed();
CREATE TRIGGER maps_request_cells_updated AFTER UPDATE ON geo311_servicerequest
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION maps_request_cells_changed();
CREATE TRIGGER maps_request_cells_deleted AFTER DELETE ON geo311_servicerequest
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION maps_request_cells_changed();
CREATE TRIGGER maps_request_cells_truncated AFTER TRUNCATE ON geo311_servicerequest
    FOR EACH STATEMENT EXECUTE FUNCTION maps_request_cells_truncated();
CREATE TRIGGER maps_request_cells_category AFTER UPDATE ON geo311_servicecategory
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION maps_request_cells_category_changed();
"""

# Other tables request tiles read (codes, Open311 states) and the tables of the other layers.
WATCHED = [
    ("geo311_servicecategory", "requests", "INSERT OR DELETE OR TRUNCATE"),
    ("geo311_status", "requests", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("boundaries_layer", "boundaries", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("boundaries_layerversion", "boundaries", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("boundaries_boundary", "boundaries", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("maps_analysisrun", "hotspots", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("maps_hotspotcell", "hotspots", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
]

WATCH = "".join(
    f"""
CREATE TRIGGER maps_tile_changed AFTER {events} ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION maps_tile_changed('{layer}');"""
    for table, layer, events in WATCHED
)

DROP = (
    "".join(f"DROP TRIGGER maps_tile_changed ON {table};" for table, _, _ in WATCHED)
    + """
DROP TRIGGER maps_request_cells_category ON geo311_servicecategory;
DROP TRIGGER maps_request_cells_truncated ON geo311_servicerequest;
DROP TRIGGER maps_request_cells_deleted ON geo311_servicerequest;
DROP TRIGGER maps_request_cells_updated ON geo311_servicerequest;
DROP TRIGGER maps_request_cells_inserted ON geo311_servicerequest;
DROP FUNCTION maps_request_cells_rebuild(double precision, text);
DROP FUNCTION maps_request_cells_category_changed();
DROP FUNCTION maps_request_cells_truncated();
DROP FUNCTION maps_request_cells_changed();
DROP FUNCTION maps_request_cell_keys(geometry, timestamptz, boolean);
DROP TABLE maps_request_cell;
DROP TABLE maps_request_cell_config;
DROP TABLE maps_tile_cache;
DROP FUNCTION maps_tile_changed();
DROP FUNCTION maps_tile_bump(text);
DROP TABLE maps_tile_generation;
DROP SEQUENCE maps_tile_generation_seq;
"""
)


def backfill(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT maps_request_cells_rebuild(%s, %s)",
            [float(settings.GEO311_SENSITIVE_GRID_M), settings.TIME_ZONE],
        )


class Migration(migrations.Migration):
    dependencies = [
        ("maps", "0001_analysis"),
        ("boundaries", "0001_initial"),
        ("geo311", "0009_category_sensitive"),
    ]

    operations = [
        migrations.RunSQL(CREATE + WATCH, DROP),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
