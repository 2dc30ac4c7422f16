"""API authentication: `Authorization: Token <key>`, checked against the stored hashes of keys."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from training.models import ApiToken, hash_token


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's header format, with keys looked up by their sha256 so that the database never holds one."""

    def authenticate_credentials(self, key: str) -> tuple:
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token
