"""What happens to every request before any view: NUL characters refused, the Content-Security-Policy set."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

NUL = "\x00"


class RefuseNulBytes:
    """A NUL character in the path or a query parameter is a 400 naming where it is.

    PostgreSQL can neither store nor compare text holding one, so it must not reach a query.
    (Bodies are checked where they are parsed: `body.check_json`, and Django's form fields.)
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = ["path"] if NUL in request.path else []
        where += [name.replace(NUL, "\\0") for name, values in request.GET.lists() if NUL in name + "".join(values)]
        if not where:
            return self.get_response(request)
        errors = {name: ["Must not contain NUL characters."] for name in where}
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": "The request holds a NUL character.", "errors": errors}, status=400)
        named = ", ".join(where)
        return HttpResponseBadRequest(f"Bad request: a NUL character in {named}.", content_type="text/plain")


class ContentSecurityPolicy:
    """Every answer carries `settings.CONTENT_SECURITY_POLICY` unless its view set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
