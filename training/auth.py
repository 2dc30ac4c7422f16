"""API authentication: `Authorization: Token <key>`, checked against the stored hashes of keys, and
the one rule a token's limits add before any route's own: a read-only token only reads."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from training import throttles
from training.models import ApiToken, hash_token

#: How often a token's last use is written down (not on every request).
LAST_USED_EVERY = timedelta(minutes=1)


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's header format, with keys looked up by their sha256 so that the database never holds one."""

    def authenticate(self, request) -> tuple | None:
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            throttles.count_nobody(request)
            raise

    def authenticate_credentials(self, key: str) -> tuple:
        token = ApiToken.objects.select_related("user", "project").filter(key_hash=hash_token(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        if token.is_expired:
            raise exceptions.AuthenticationFailed("This token has expired.")
        now = timezone.now()
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_EVERY:
            stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
            ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)  # one writer a minute
        return token.user, token


class SignedIn(permissions.IsAuthenticated):
    """A user is signed in, and a read-only token sends only GET, HEAD and OPTIONS."""

    message = "This API token is read-only."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            throttles.count_nobody(request)
            return False
        token = request.auth
        return not (isinstance(token, ApiToken) and token.read_only and request.method not in permissions.SAFE_METHODS)
