import django.db.models.deletion
from django.db import migrations, models


#: How a run's status reads as the status of the job of its current attempt.
JOB_STATUS = {
    "submitted": "launched",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


def jobs_from_runs(apps, schema_editor):
    """Each launched run gets a job for its current attempt, with its handle, times and status; its
    artifacts belong to that attempt. Jobs launched before keep their names through the handle."""
    Run = apps.get_model("training", "Run")
    Job = apps.get_model("training", "Job")
    JobRun = apps.get_model("training", "JobRun")
    Artifact = apps.get_model("training", "Artifact")
    for run in Run.objects.exclude(status="queued").iterator():
        if not run.job_handle and run.status in ("failed", "cancelled"):
            continue  # it never had a job: refused at launch, or cancelled while queued
        job = Job.objects.create(
            executor=run.executor,
            attempt=run.attempt,
            compute_resource=run.compute_resource,
            status=JOB_STATUS[run.status],
            message=run.failure_reason,
            handle=run.job_handle,
            launched_at=run.submitted_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        JobRun.objects.create(job=job, run=run, attempt=run.attempt)
        Artifact.objects.filter(run=run).update(attempt=run.attempt)


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0004_leases"),
    ]

    operations = [
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("executor", models.CharField(max_length=32)),
                ("attempt", models.PositiveIntegerField(default=1)),
                ("compute_resource", models.CharField(max_length=64)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("launched", "Launched"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("lost", "Lost"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                (
                    "cause",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("oom", "out of memory"),
                            ("deadline", "over its time limit"),
                            ("bad_data", "bad data"),
                            ("crash", "the trainer crashed"),
                            ("disappeared", "disappeared"),
                            ("cancelled", "cancelled"),
                            ("unschedulable", "no node can run it"),
                            ("image_pull", "the image cannot be pulled"),
                            ("refused", "the executor refused it"),
                        ],
                        max_length=16,
                    ),
                ),
                ("message", models.TextField(blank=True)),
                ("handle", models.JSONField(blank=True, default=dict)),
                ("lease_holder", models.CharField(blank=True, max_length=200)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("launched_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["-id"],
            },
        ),
        migrations.CreateModel(
            name="JobEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "old_status",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("pending", "Pending"),
                            ("launched", "Launched"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("lost", "Lost"),
                            ("cancelled", "Cancelled"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "new_status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("launched", "Launched"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("lost", "Lost"),
                            ("cancelled", "Cancelled"),
                        ],
                        max_length=16,
                    ),
                ),
                ("reason", models.TextField(blank=True)),
                ("actor", models.CharField(max_length=150)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["created_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="JobRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("attempt", models.PositiveIntegerField()),
            ],
        ),
        migrations.RemoveConstraint(
            model_name="artifact",
            name="artifact_name_per_run",
        ),
        migrations.AddField(
            model_name="artifact",
            name="attempt",
            field=models.PositiveIntegerField(default=1),
        ),
        migrations.AddConstraint(
            model_name="artifact",
            constraint=models.UniqueConstraint(fields=("run", "attempt", "name"), name="artifact_name_per_run_attempt"),
        ),
        migrations.AddField(
            model_name="jobevent",
            name="job",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="events", to="training.job"
            ),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="job",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="training.job"
            ),
        ),
        migrations.AddField(
            model_name="jobrun",
            name="run",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="training.run"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="runs",
            field=models.ManyToManyField(related_name="jobs", through="training.JobRun", to="training.run"),
        ),
        migrations.AddConstraint(
            model_name="jobrun",
            constraint=models.UniqueConstraint(fields=("run", "attempt"), name="one_job_per_run_attempt"),
        ),
        migrations.AddConstraint(
            model_name="jobrun",
            constraint=models.UniqueConstraint(fields=("job", "run"), name="run_once_per_job"),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["executor", "status"], name="job_executor_status"),
        ),
        migrations.RunPython(jobs_from_runs, migrations.RunPython.noop),
    ]
