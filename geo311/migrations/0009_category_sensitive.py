"""Sensitive categories, and the database function that gives a request's public location
(geo311/privacy.py computes the same point in Python)."""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations, models

PUBLIC_LOCATION = """
CREATE OR REPLACE FUNCTION geo311_public_location(
    location geometry, sensitive boolean, grid_m double precision
) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN sensitive THEN ST_Transform(
        ST_SnapToGrid(ST_Transform(location, 3857), grid_m / 2, grid_m / 2, grid_m, grid_m),
        ST_SRID(location)
    ) ELSE location END
$$;
COMMENT ON FUNCTION geo311_public_location(geometry, boolean, double precision) IS
    'location as the public may see it: for a sensitive category, the centre of its grid_m cell '
    'of an EPSG:3857 grid';
"""


class Migration(migrations.Migration):
    dependencies = [
        ("geo311", "0008_partial_link_indexes"),
    ]

    operations = [
        pgtrigger.migrations.RemoveTrigger(
            model_name="servicecategory",
            name="insert_insert",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="servicecategory",
            name="update_update",
        ),
        pgtrigger.migrations.RemoveTrigger(
            model_name="servicecategory",
            name="delete_delete",
        ),
        migrations.AddField(
            model_name="servicecategory",
            name="sensitive",
            field=models.BooleanField(
                default=False,
                help_text="Public outputs (maps, tiles, feeds, Open311) show these requests only at the centre of a GEO311_SENSITIVE_GRID_M grid cell; the exact point is for staff",
            ),
        ),
        migrations.AddField(
            model_name="servicecategoryhistory",
            name="sensitive",
            field=models.BooleanField(
                default=False,
                help_text="Public outputs (maps, tiles, feeds, Open311) show these requests only at the centre of a GEO311_SENSITIVE_GRID_M grid cell; the exact point is for staff",
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="servicecategory",
            trigger=pgtrigger.compiler.Trigger(
                name="insert_insert",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func='WITH _pgh_attached_context AS ( SELECT _pgh_attach_context() AS value ) INSERT INTO "geo311_servicecategoryhistory" ("active", "default_department_id", "description", "duplicate_likely_score", "duplicate_radius_m", "duplicate_window_days", "group", "id", "keywords", "name", "order", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "sensitive", "service_code", "type") SELECT new_values."active", new_values."default_department_id", new_values."description", new_values."duplicate_likely_score", new_values."duplicate_radius_m", new_values."duplicate_window_days", new_values."group", new_values."id", new_values."keywords", new_values."name", new_values."order", _pgh_attached_context.value, NOW(), \'insert\', new_values."id", new_values."sensitive", new_values."service_code", new_values."type" FROM ( SELECT new_values.* FROM new_values  ) AS new_values, _pgh_attached_context; RETURN NULL;',
                    hash="578a48c5a09229bf66c57687b4bc33636be7512c",
                    level="STATEMENT",
                    operation="INSERT",
                    pgid="pgtrigger_insert_insert_cc130",
                    referencing="REFERENCING NEW TABLE AS new_values ",
                    table="geo311_servicecategory",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="servicecategory",
            trigger=pgtrigger.compiler.Trigger(
                name="update_update",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func='WITH _pgh_attached_context AS ( SELECT _pgh_attach_context() AS value ) INSERT INTO "geo311_servicecategoryhistory" ("active", "default_department_id", "description", "duplicate_likely_score", "duplicate_radius_m", "duplicate_window_days", "group", "id", "keywords", "name", "order", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "sensitive", "service_code", "type") SELECT old_values."active", old_values."default_department_id", old_values."description", old_values."duplicate_likely_score", old_values."duplicate_radius_m", old_values."duplicate_window_days", old_values."group", old_values."id", old_values."keywords", old_values."name", old_values."order", _pgh_attached_context.value, NOW(), \'update\', old_values."id", old_values."sensitive", old_values."service_code", old_values."type" FROM ( SELECT old_values.* FROM old_values JOIN new_values ON (old_values."id") = (new_values."id") WHERE (old_values.* IS DISTINCT FROM new_values.*) ) AS old_values, _pgh_attached_context; RETURN NULL;',
                    hash="8dbc7de0ea1d958a3601a6a5e6ccb0953dad764c",
                    level="STATEMENT",
                    operation="UPDATE",
                    pgid="pgtrigger_update_update_fbdc2",
                    referencing="REFERENCING OLD TABLE AS old_values  NEW TABLE AS new_values ",
                    table="geo311_servicecategory",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="servicecategory",
            trigger=pgtrigger.compiler.Trigger(
                name="delete_delete",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func='WITH _pgh_attached_context AS ( SELECT _pgh_attach_context() AS value ) INSERT INTO "geo311_servicecategoryhistory" ("active", "default_department_id", "description", "duplicate_likely_score", "duplicate_radius_m", "duplicate_window_days", "group", "id", "keywords", "name", "order", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "sensitive", "service_code", "type") SELECT old_values."active", old_values."default_department_id", old_values."description", old_values."duplicate_likely_score", old_values."duplicate_radius_m", old_values."duplicate_window_days", old_values."group", old_values."id", old_values."keywords", old_values."name", old_values."order", _pgh_attached_context.value, NOW(), \'delete\', old_values."id", old_values."sensitive", old_values."service_code", old_values."type" FROM ( SELECT old_values.* FROM old_values  ) AS old_values, _pgh_attached_context; RETURN NULL;',
                    hash="651f8513445c84bfbd3f0a1a48933f438bb333a6",
                    level="STATEMENT",
                    operation="DELETE",
                    pgid="pgtrigger_delete_delete_01de8",
                    referencing="REFERENCING OLD TABLE AS old_values ",
                    table="geo311_servicecategory",
                    when="AFTER",
                ),
            ),
        ),
        migrations.RunSQL(
            PUBLIC_LOCATION,
            "DROP FUNCTION geo311_public_location(geometry, boolean, double precision);",
        ),
    ]
