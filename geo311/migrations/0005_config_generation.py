"""A configuration generation number that changes with every write to the city's configuration.

Each web process keeps a copy of the configuration (``geo311.cache``) and reads this one number
per request to know whether its copy is still current. Database triggers, not Django signals,
move it: signals miss ``QuerySet.update()``, ``bulk_create`` and raw SQL, and the number must
move inside the writing transaction, so that a transaction sees its own edits.

The numbers come from a sequence, which a rollback does not rewind: a rolled-back edit can never
hand a later, different configuration a number some process has already cached. The table is
not a model, so test flushes (TRUNCATE of every model table) leave its row alone. Transactions
that write the configuration queue on its one row until they commit; readers never wait.
"""

from django.db import migrations

# Tables whose rows a process caches (geo311.cache), and for each the UPDATE columns that
# matter: ApiKey.last_used_at is written by POSTs themselves and must not move the number;
# a layer's name and description are not cached.
WATCHED = [
    ("geo311_department", ""),
    ("geo311_team", ""),
    ("geo311_servicecategory", ""),
    ("geo311_servicecategory_required_layers", ""),
    ("geo311_serviceattribute", ""),
    ("geo311_attributevalue", ""),
    ("geo311_routingrule", ""),
    ("geo311_servicelevel", ""),
    ("geo311_status", ""),
    ("geo311_apikey", "key, active, may_post_updates, department_id"),
    ("boundaries_layer", "slug, kind"),
]

CREATE = """
CREATE SEQUENCE geo311_config_generation_seq;
CREATE TABLE geo311_config_generation (
    id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    generation bigint NOT NULL
);
INSERT INTO geo311_config_generation (generation)
VALUES (nextval('geo311_config_generation_seq'));

CREATE FUNCTION geo311_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO geo311_config_generation (id, generation)
    VALUES (1, nextval('geo311_config_generation_seq'))
    ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation;
    RETURN NULL;
END
$$;
"""

DROP = """
DROP FUNCTION geo311_config_changed() CASCADE;
DROP TABLE geo311_config_generation;
DROP SEQUENCE geo311_config_generation_seq;
"""


def _triggers(table: str, update_of: str) -> str:
    update = f"UPDATE OF {update_of}" if update_of else "UPDATE"
    return f"""
CREATE TRIGGER geo311_config_changed AFTER INSERT OR {update} OR DELETE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION geo311_config_changed();
CREATE TRIGGER geo311_config_truncated AFTER TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION geo311_config_changed();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("boundaries", "0001_initial"),
        ("geo311", "0004_lifecycle"),
    ]

    operations = [
        migrations.RunSQL(
            CREATE + "".join(_triggers(table, columns) for table, columns in WATCHED),
            DROP,
        ),
    ]
