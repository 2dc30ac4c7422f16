"""The API server of the test cluster: kmock's `KubernetesEmulator` with what a real API server
would also do for Railyard — label selectors, `limit`/`continue` paging, uid and resourceVersion,
proper 404/409 answers, objects found by key — and faults injected on request or at random.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import itertools
import random
import uuid
from typing import Any

import kmock
from kmock._internal import enums

NOW = lambda: datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key.rstrip("!")) != value.lstrip("="):
            return False
    return True


def _from_railyard(request: Any) -> bool:
    """Railyard's clients carry the kubeconfig's token; the test controller's do not."""
    headers = {k.lower(): v for k, v in (request.headers or {}).items()}
    return headers.get("authorization") == "Bearer test-token"


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with what a real API server would also do for Railyard."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.versions = itertools.count(1)
        self.faults: list[tuple[str, str, int | None]] = []  # (action, plural, status or None for a hang)
        self.list_calls: list[tuple[str, dict[str, str]]] = []
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()  # (action, plural)
        # Names that Railyard's listings (those with a label selector) leave out: a stale or lagging list.
        self.hidden: set[str] = set()
        # The share of Railyard's requests (those with its token) that fail at random: half answer 500,
        # a quarter never answer in time, a quarter are carried out but answered too late.
        self.fault_rate = 0.0
        self.random = random.Random(20261125)
        self.created_jobs: collections.Counter[str] = collections.Counter()  # every Job name ever created

    def inject(self, action: str, plural: str, status: int | None, times: int = 1) -> None:
        """Answer the next `times` requests of this kind with `status` (None: never answer in time)."""
        self.faults.extend([(action.upper(), plural, status)] * times)

    async def _handle(self, request: Any) -> Any:
        try:
            late = False
            if self.fault_rate and request.resource is not None and _from_railyard(request):
                draw = self.random.random()
                if draw < self.fault_rate / 2:
                    raise kmock.KubernetesError(status=500, reason="Injected", message="injected fault")
                if draw < self.fault_rate * 3 / 4:
                    await asyncio.sleep(30)  # longer than the client's request timeout
                    raise kmock.KubernetesError(status=500, reason="Injected", message="injected fault")
                late = draw < self.fault_rate
            if request.resource is not None:
                fault = next(
                    (f for f in self.faults if f[0] == request.action.value and f[1] == request.resource.plural), None
                )
                if fault:
                    self.faults.remove(fault)
                    if fault[2] is None:
                        await asyncio.sleep(30)  # longer than the client's request timeout
                    raise kmock.KubernetesError(status=fault[2], reason="Injected", message="injected fault")
                self.calls[(request.action.value, request.resource.plural)] += 1
                if request.action == enums.action.LIST:
                    self.list_calls.append((request.resource.plural, dict(request.params)))
                if isinstance(request.data, dict):
                    meta = request.data.setdefault("metadata", {})
                    meta["resourceVersion"] = str(next(self.versions))
                    if request.action == enums.action.CREATE:
                        meta.setdefault("uid", str(uuid.uuid4()))
                        meta.setdefault("creationTimestamp", NOW())
            answer = await super()._handle(request)
            if request.action == enums.action.CREATE and request.resource and request.resource.plural == "jobs":
                self.created_jobs[request.data["metadata"]["name"]] += 1
            if late:
                await asyncio.sleep(30)  # done, but the client has given up waiting for the answer
            return answer
        except kmock.KubernetesError as exc:
            return await self._render_error(exc)
        finally:
            # kmock keeps every request and scans them all on every call (to match the request
            # against its reactions): forgotten once answered, a call costs the same at the ten
            # thousandth as at the first. Only this one is forgotten: another may still be waiting
            # to be matched.
            self._forget(request)

    def _forget(self, request: Any) -> None:
        for i, seen in enumerate(self._requests):
            if seen is request:
                del self._requests[i]
                return

    # kmock finds objects by scanning all of them on every request; with thousands stored (the
    # benchmarks), the fake would set the pace. Every resource the cluster serves is declared, and
    # an object read, made, changed or deleted by name is found by its key.

    def _get_resources(self) -> list[Any]:
        return kmock.KubernetesScaffold._get_resources(self)

    def _by_key(self, request: Any, name: str | None, namespace: str | None) -> Any:
        obj = self._objects._objects.get((request.resource, namespace, name)) if name else None
        return None if obj is None or obj.deleted else obj

    async def _serve_fetch(self, request: Any) -> Any:
        obj = self._by_key(request, request.name, request.namespace)
        return obj.raw if obj is not None else await super()._serve_fetch(request)

    async def _serve_create(self, request: Any) -> Any:
        meta = request.data.get("metadata", {}) if isinstance(request.data, dict) else {}
        obj = self._by_key(request, meta.get("name"), request.namespace or meta.get("namespace"))
        return obj.last.raw if obj is not None else await super()._serve_create(request)

    async def _serve_update(self, request: Any) -> Any:
        obj = self._objects._objects.get((request.resource, request.namespace, request.name))
        return obj.last.raw if obj is not None else await super()._serve_update(request)

    async def _serve_delete(self, request: Any) -> Any:
        obj = self._objects._objects.get((request.resource, request.namespace, request.name))
        return obj.last.raw if obj is not None else await super()._serve_delete(request)

    async def _serve_list(self, request: Any) -> Any:
        listing = await super()._serve_list(request)
        selector = request.params.get("labelSelector", "")
        items = sorted(
            (
                i
                for i in listing["items"]
                if _matches(i.get("metadata", {}).get("labels") or {}, selector)
                and not (selector and i.get("metadata", {}).get("name") in self.hidden)
            ),
            key=lambda i: i["metadata"]["name"],
        )
        start = int(request.params.get("continue") or 0)
        limit = int(request.params.get("limit") or len(items) or 1)
        page = items[start : start + limit]
        more = start + limit < len(items)
        return {
            "metadata": {
                "resourceVersion": str(next(self.versions)),
                **({"continue": str(start + limit)} if more else {}),
            },
            "items": page,
        }
