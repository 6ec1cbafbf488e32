"""A change to requests makes afresh only the request tiles over its area, not every one.

Until now every statement that changed requests moved the ``requests`` generation, and every
request tile was made again at its next view: at one change a second the busy tiles of a city
never got warm (``make bench ONLY=tiles_cached``, details.under_writes).

- ``maps_tile_area``: a number per area of a layer, an area being a z12 tile (AREA_ZOOM; about
  7 km across at New York's latitude). The request triggers add 1 to the number of every area
  holding a changed request (the public location, as the counts: the old and the new one of a
  moved request), in the writing transaction, and notify ``requests:<ax>:<ay>`` on
  ``geo311_tiles``. A statement over more than AREAS_MAX areas (a bulk import) moves the
  layer's generation instead, as before.
- A request tile's stamp is the layer's generation and the sum of the numbers of the areas its
  envelope and buffer touch (``maps.sql_tiles.area_range``). Numbers only grow, each under its
  row's lock, so any change committed under a tile makes the sum grow, whatever order the
  writers commit in (a maximum would not: the sequence's values commit out of order).
- ``maps_tile_cache.areas``: the sum a cached tile was made at, beside its generation.

What moves the whole layer still does: a category turning sensitive, statuses, categories
added or removed, ``tiles_rebuild``, TRUNCATE.
"""

import importlib

from django.db import migrations

# The rows an UPDATE takes out of the counts and puts in (old and new), as migration 0002 has it.
UPDATED = importlib.import_module("maps.migrations.0002_tiles").UPDATED

AREAS_MAX = 256
AREA_SHIFT = 1  # level-13 cells per z12 area side: 2 ** AREA_SHIFT


def _changed(delta: str) -> str:
    """The counts upsert of migration 0002 over ``delta``, also collecting the areas of the
    changed rows (level-13 cells, shifted to z12 tiles) into ``areas``."""
    return f"""WITH delta AS ({delta}), keyed AS MATERIALIZED (
            SELECT k.level, k.cx, k.cy, d.category_id, d.status_id, k.month, d.sign
            FROM delta d
            JOIN geo311_servicecategory cat ON cat.id = d.category_id
            CROSS JOIN LATERAL maps_request_cell_keys(d.location, d.requested_at, cat.sensitive) k
        ), counted AS (
            INSERT INTO maps_request_cell AS c (level, cx, cy, category_id, status_id, month, n)
            SELECT level, cx, cy, category_id, status_id, month, sum(sign)
            FROM keyed
            GROUP BY 1, 2, 3, 4, 5, 6
            HAVING sum(sign) <> 0
            ORDER BY 1, 2, 3, 4, 5, 6
            ON CONFLICT (level, cx, cy, category_id, status_id, month)
            DO UPDATE SET n = c.n + EXCLUDED.n
        )
        SELECT (SELECT count(*) FROM delta),
               (SELECT array_agg(DISTINCT ARRAY[cx >> {AREA_SHIFT}, cy >> {AREA_SHIFT}])
                FROM keyed WHERE level = 13)
        INTO changed, areas;"""


def _function(bump: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION maps_request_cells_changed() RETURNS trigger LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    changed bigint;
    areas integer[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_changed("SELECT category_id, status_id, location, requested_at, 1 AS sign FROM new_rows")}
    ELSIF TG_OP = 'DELETE' THEN
        {_changed("SELECT category_id, status_id, location, requested_at, -1 AS sign FROM old_rows")}
    ELSE
        {_changed(UPDATED)}
    END IF;
    IF changed > 0 THEN
        {bump}
    END IF;
    RETURN NULL;
END
$$;
"""


BY_AREA = f"""IF coalesce(array_length(areas, 1), 0) BETWEEN 1 AND {AREAS_MAX} THEN
            INSERT INTO maps_tile_area AS t (layer, ax, ay, generation)
            SELECT 'requests', areas[i][1], areas[i][2], 1
            FROM generate_subscripts(areas, 1) i
            ORDER BY 2, 3
            ON CONFLICT (layer, ax, ay) DO UPDATE SET generation = t.generation + 1;
            PERFORM pg_notify('geo311_tiles', 'requests:' || areas[i][1] || ':' || areas[i][2])
            FROM generate_subscripts(areas, 1) i;
        ELSE
            PERFORM maps_tile_bump('requests');
        END IF;"""

CREATE = f"""
CREATE TABLE maps_tile_area (
    layer text NOT NULL,
    ax integer NOT NULL,
    ay integer NOT NULL,
    generation bigint NOT NULL,
    PRIMARY KEY (layer, ax, ay)
);
ALTER TABLE maps_tile_cache ADD COLUMN areas bigint NOT NULL DEFAULT 0;
{_function(BY_AREA)}
"""

DROP = f"""
{_function("PERFORM maps_tile_bump('requests');")}
ALTER TABLE maps_tile_cache DROP COLUMN areas;
DROP TABLE maps_tile_area;
"""


class Migration(migrations.Migration):
    dependencies = [("maps", "0004_tile_generation_notify")]

    operations = [migrations.RunSQL(CREATE, DROP)]
