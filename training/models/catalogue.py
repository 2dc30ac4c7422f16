"""Projects and the workflow catalogue."""

from __future__ import annotations

from django.db import models


class Project(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Workflow(models.Model):
    """The catalogue of workflows installed in the trainer, synced by `manage.py sync_workflows`."""

    name = models.SlugField(max_length=100, unique=True)
    task = models.CharField(max_length=32)
    description = models.TextField(blank=True)
    default_params = models.JSONField(default=dict, blank=True)
    #: What each `custom_params` key accepts (`railyard_trainer.parameters`); null: not declared.
    parameters = models.JSONField(null=True, blank=True)
    is_available = models.BooleanField(default=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
