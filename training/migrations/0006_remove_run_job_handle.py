from django.db import migrations


class Migration(migrations.Migration):
    """A run's handle now lives on its jobs (moved there by 0005, in a migration of its own so that
    PostgreSQL alters no table with row checks still pending)."""

    dependencies = [
        ("training", "0005_jobs_apart_from_runs"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="run",
            name="job_handle",
        ),
    ]
