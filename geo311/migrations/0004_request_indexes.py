# Fewer, cheaper indexes on the request table: bulk imports and every POST maintain them all.

import secrets

import django.db.models.deletion
import django.db.models.functions.comparison
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("geo311", "0003_duplicates_time_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="servicerequest",
            name="category",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="geo311.servicecategory",
            ),
        ),
        migrations.AlterField(
            model_name="servicerequest",
            name="possible_duplicate_of",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="possible_duplicates",
                to="geo311.servicerequest",
            ),
        ),
        migrations.AlterField(
            model_name="servicerequest",
            name="public_id",
            field=models.CharField(
                db_default=django.db.models.functions.comparison.Cast(
                    models.Func(models.Value("geo311_request_public_id"), function="nextval"),
                    models.TextField(),
                ),
                editable=False,
                help_text="Open311 service_request_id",
                max_length=64,
            ),
        ),
        migrations.AlterField(
            model_name="servicerequest",
            name="routing_rule",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="geo311.routingrule",
            ),
        ),
        migrations.AlterField(
            model_name="servicerequest",
            name="status",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="geo311.status",
            ),
        ),
        migrations.AlterField(
            model_name="servicerequest",
            name="team",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                to="geo311.team",
            ),
        ),
        migrations.AlterField(
            model_name="servicerequest",
            name="token",
            field=models.CharField(default=secrets.token_urlsafe, max_length=64),
        ),
        migrations.AddIndex(
            model_name="servicerequest",
            index=models.Index(
                condition=models.Q(("team__isnull", False)),
                fields=["team"],
                name="servicerequest_team",
            ),
        ),
        migrations.AddIndex(
            model_name="servicerequest",
            index=models.Index(
                condition=models.Q(("routing_rule__isnull", False)),
                fields=["routing_rule"],
                name="servicerequest_routing_rule",
            ),
        ),
        migrations.AddIndex(
            model_name="servicerequest",
            index=models.Index(
                condition=models.Q(("possible_duplicate_of__isnull", False)),
                fields=["possible_duplicate_of"],
                name="servicerequest_possible_dup",
            ),
        ),
        migrations.AddConstraint(
            model_name="servicerequest",
            constraint=models.UniqueConstraint(
                fields=("public_id",), name="servicerequest_unique_public_id"
            ),
        ),
        migrations.AddConstraint(
            model_name="servicerequest",
            constraint=models.UniqueConstraint(
                fields=("token",), name="servicerequest_unique_token"
            ),
        ),
    ]
