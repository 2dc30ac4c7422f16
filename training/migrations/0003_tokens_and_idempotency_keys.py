"""API tokens stored as hashes; Idempotency-Keys in a table of their own, so that they can expire.

Keys of existing runs move to the new table; keys of DRF's authtoken table (which held them in
plain text) are hashed into `ApiToken`, and that table is dropped.
"""

import hashlib
import json

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def move_idempotency_keys(apps, schema_editor):
    Run = apps.get_model("training", "Run")
    IdempotencyKey = apps.get_model("training", "IdempotencyKey")
    keyed = Run.objects.exclude(idempotency_key=None).only("id", "owner_id", "idempotency_key", "request", "created_at")
    IdempotencyKey.objects.bulk_create(
        IdempotencyKey(
            owner_id=run.owner_id,
            key=run.idempotency_key,
            request_hash=_sha256(json.dumps(run.request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)),
            run_id=run.id,
            created_at=run.created_at,
        )
        for run in keyed.iterator()
    )


def hash_plain_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("training", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
    ApiToken.objects.bulk_create(
        ApiToken(user_id=user_id, name="migrated", prefix=key[:10], key_hash=_sha256(key), created_at=created)
        for key, user_id, created in rows
    )
    schema_editor.execute("DROP TABLE authtoken_token")


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0002_run_status_message"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(blank=True, max_length=100)),
                ("prefix", models.CharField(max_length=16)),
                ("key_hash", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
        migrations.CreateModel(
            name="IdempotencyKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=255)),
                ("request_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="training.run"
                    ),
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name="idempotencykey",
            constraint=models.UniqueConstraint(fields=("owner", "key"), name="idempotency_key_per_owner"),
        ),
        migrations.RunPython(move_idempotency_keys, migrations.RunPython.noop),
        migrations.RunPython(hash_plain_tokens, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="run", name="run_idempotency_key_per_owner"),
        migrations.RemoveField(model_name="run", name="idempotency_key"),
    ]
