from django.conf import settings
from django.db import migrations, models


TRIGRAM_INDEX = "run_description_trgm"


def add_trigram_index(apps, schema_editor):
    """On PostgreSQL, a search of descriptions (Django's `icontains`: `UPPER(model_description) LIKE
    UPPER('%…%')`) is served by a trigram index on that very expression; SQLite scans."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON training_run USING gin (UPPER(model_description) gin_trgm_ops)"
    )


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ('training', '0006_remove_run_job_handle'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='run',
            name='run_project_newest',
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['status', '-id'], name='run_status_newest'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['project', '-id'], name='run_project_newest_id'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['project', 'status', '-id'], name='run_project_status_newest'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['workflow', '-id'], name='run_workflow_newest'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['user', '-id'], name='run_user_newest'),
        ),
        migrations.RunPython(add_trigram_index, drop_trigram_index),
    ]
