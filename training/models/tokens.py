"""API tokens, stored only as their sha256."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from training.models.catalogue import Project


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).hexdigest()


class ApiToken(models.Model):
    """An API key, stored only as its sha256: the key itself is shown once, when it is issued."""

    KEY_PREFIX = "ry_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    # The key's first characters, so that people can tell their keys apart without the key.
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    #: Set: the token reaches only this project.
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    #: The token may look but not act: launch, cancel, change nothing.
    read_only = models.BooleanField(default=False)
    #: Past it the token is refused (401); null: it does not expire.
    expires_at = models.DateTimeField(null=True, blank=True)
    #: When the token was last accepted, to the minute.
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @classmethod
    def issue(cls, user: models.Model, name: str = "", **limits: object) -> tuple[ApiToken, str]:
        """A new token for `user` (`limits`: project, read_only, expires_at); returns it with the key,
        which is not stored and cannot be shown again."""
        key = cls.KEY_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, prefix=key[:10], key_hash=hash_token(key), **limits)
        return token, key
