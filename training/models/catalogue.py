"""Projects and the workflow catalogue."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models

S3_PREFIX = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class Project(models.Model):
    """A team's space: its runs and models, its members (`Membership`), and the data it may read, which
    operators set (empty: the installation's defaults, `training.teams.data`)."""

    name = models.SlugField(max_length=100, unique=True)
    #: The only folders its `file` sources may name (absolute paths); relative paths start at the first.
    data_roots = models.JSONField(default=list, blank=True)
    #: The only S3 places its `s3` sources may name: `s3://bucket/` or `s3://bucket/folder/`.
    s3_prefixes = models.JSONField(default=list, blank=True)
    #: The Kubernetes Secret whose keys become its trainers' environment (its data credentials).
    credentials_secret = models.CharField(max_length=253, blank=True)
    #: Its own trainer image, built FROM Railyard's; empty: the installation's (`training.images`).
    trainer_image = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        roots = self.data_roots
        if not isinstance(roots, list) or not all(isinstance(r, str) and r.startswith("/") for r in roots):
            errors["data_roots"] = 'A list of absolute folders: ["/data/fraud"].'
        prefixes = self.s3_prefixes
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and S3_PREFIX.match(p) for p in prefixes):
            errors["s3_prefixes"] = 'A list of S3 places: ["s3://fraud-data/", "s3://shared/fraud/"].'
        if self.credentials_secret and not SECRET_NAME.match(self.credentials_secret):
            errors["credentials_secret"] = "A Kubernetes Secret's name: lower-case letters, digits, '-' and '.'."
        if errors:
            raise ValidationError(errors)


class Workflow(models.Model):
    """A workflow of a trainer image, as discovered by `manage.py sync_workflows [--image IMAGE]`; two
    images may each have a workflow of the same name."""

    #: The image that holds it; empty: the installation's own trainer (`training.images.DEFAULT`).
    image = models.CharField(max_length=255, blank=True, default="")
    name = models.SlugField(max_length=100)
    task = models.CharField(max_length=32)
    description = models.TextField(blank=True)
    default_params = models.JSONField(default=dict, blank=True)
    #: What each `custom_params` key accepts (`railyard_trainer.parameters`); null: not declared.
    parameters = models.JSONField(null=True, blank=True)
    is_available = models.BooleanField(default=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["image", "name"]
        constraints = [models.UniqueConstraint(fields=["image", "name"], name="one_workflow_name_per_image")]

    def __str__(self) -> str:
        return f"{self.name} ({self.image})" if self.image else self.name
