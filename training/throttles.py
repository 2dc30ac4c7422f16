"""How often a caller may ask: the API per token (or signed-in user), and sign-ins per address and per
username once they keep failing. Counts live in Django's cache: per process with the default local
memory cache, across replicas with a shared one."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from training.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    """`RAILYARD_THROTTLE_TOKEN` requests per token; a browser session counts as its user's."""

    scope = "token"

    def get_cache_key(self, request, view) -> str | None:
        if not request.user.is_authenticated:
            return None  # nobody's requests are counted per address (AnonRateThrottle)
        token = request.auth
        ident = f"token-{token.pk}" if isinstance(token, ApiToken) else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class AddressRateThrottle(AnonRateThrottle):
    """`RAILYARD_THROTTLE_ANON` requests per address from nobody: the same count as DRF's for open routes."""

    def get_cache_key(self, request, view) -> str:
        # No look at request.user: this runs while the request is still being authenticated.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def count_nobody(request: Request) -> None:
    """Count a request that no valid token or session signs (a 401 to be), and refuse it past the rate;
    so a closed route, or a guessed token, costs the guesser as an open route would."""
    throttle = AddressRateThrottle()
    if not throttle.allow_request(request, None):
        raise Throttled(throttle.wait())


def _address(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def _keys(request: HttpRequest | None, username: str) -> list[str]:
    return [f"railyard:sign-in-failures:address:{_address(request)}", f"railyard:sign-in-failures:user:{username}"]


def sign_in_blocked(request: HttpRequest | None, username: str) -> bool:
    """Whether the address or the username has failed `SIGN_IN_FAILURES` times within the lockout."""
    counts = cache.get_many(_keys(request, username.lower()))
    return any(count >= settings.SIGN_IN_FAILURES for count in counts.values())


def sign_in_failed(request: HttpRequest | None, username: str) -> None:
    for key in _keys(request, username.lower()):
        cache.add(key, 0, settings.SIGN_IN_LOCKOUT_SECONDS)  # the lockout runs from the first failure
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, settings.SIGN_IN_LOCKOUT_SECONDS)


class ThrottledSignIn:
    """A sign-in form that stops checking passwords after too many failures from an address or for a name."""

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        if sign_in_blocked(self.request, username):
            minutes = max(1, settings.SIGN_IN_LOCKOUT_SECONDS // 60)
            raise forms.ValidationError(
                f"Too many failed sign-ins: wait {minutes} minutes and try again.", code="throttled"
            )
        try:
            return super().clean()
        except forms.ValidationError:
            sign_in_failed(self.request, username)
            raise


class SignInForm(ThrottledSignIn, AuthenticationForm):
    pass


class AdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    pass
