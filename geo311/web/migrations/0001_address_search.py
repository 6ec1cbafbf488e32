"""The address search behind the report page's address box: a trigram index on the address
points' normalised street line answers both ``LIKE 'PREFIX%'`` (what the resident has typed so
far) and trigram similarity (their typos). The btree index on ``normalized`` cannot answer
LIKE under a non-C collation."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("geo311", "0009_category_sensitive")]

    operations = [
        TrigramExtension(),
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS geo311_addresspoint_normalized_trgm "
            "ON geo311_addresspoint USING gin (normalized gin_trgm_ops)",
            "DROP INDEX IF EXISTS geo311_addresspoint_normalized_trgm",
        ),
    ]
