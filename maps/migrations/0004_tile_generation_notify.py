"""A tile layer's generation moving is announced: ``maps_tile_bump`` also sends a notification
on the ``geo311_tiles`` channel naming the layer ("requests", "boundaries", "hotspots").

PostgreSQL delivers it when the change commits, once per layer per transaction (equal
notifications of one transaction are folded), to every connection that LISTENs: the web
processes' connections (``maps.sql_tiles.stamp``), which then read the number again
before serving a tile they keep in memory, instead of reading it for every tile. The
generation row is still moved in the transaction, so the tile cache table (read with the
number in one statement) is exactly as before.
"""

from django.db import migrations

NOTIFYING = """
CREATE OR REPLACE FUNCTION maps_tile_bump(tile_layer text) RETURNS void LANGUAGE sql AS $$
    UPDATE maps_tile_generation SET generation = nextval('maps_tile_generation_seq')
    WHERE layer = tile_layer;
    SELECT pg_notify('geo311_tiles', tile_layer);
$$;
"""

SILENT = """
CREATE OR REPLACE FUNCTION maps_tile_bump(tile_layer text) RETURNS void LANGUAGE sql AS $$
    UPDATE maps_tile_generation SET generation = nextval('maps_tile_generation_seq')
    WHERE layer = tile_layer
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("maps", "0003_request_cell_totals")]

    operations = [migrations.RunSQL(NOTIFYING, SILENT)]
