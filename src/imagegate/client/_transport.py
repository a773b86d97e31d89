"""The two drivers that run plans over httpx: the only code that differs between sync and async.

Each turns a `Request` into an httpx request, maps httpx's timeouts and transport errors to a
`Failure`, reads error bodies whole, and hands a successful streamed response back open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from imagegate.client._plan import Failure, Outcome, Plan, Reply, Request, Sleep

T = TypeVar("T")


def _build(http: httpx.Client | httpx.AsyncClient, base_url: str, request: Request) -> httpx.Request:
    absolute = request.url.startswith(("http://", "https://"))
    return http.build_request(
        request.method,
        request.url if absolute else f"{base_url}/{request.url}",
        headers=dict(request.headers),
        json=request.json,
        data=dict(request.data) if request.data is not None else None,
        files=list(request.files) if request.files else None,
    )


def _headers(response: httpx.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


def _failure(exc: httpx.TransportError) -> Failure:
    timeout = isinstance(exc, httpx.TimeoutException)
    detail = str(exc) or type(exc).__name__
    return Failure(("Request timed out: " if timeout else "Connection error: ") + detail, timeout)


def _keeps_open(request: Request, response: httpx.Response) -> bool:
    return request.stream and response.status_code < 400


class SyncDriver:
    """Runs plans with a blocking `httpx.Client` and a blocking `sleep`."""

    def __init__(self, http: httpx.Client, sleep: Callable[[float], Any], base_url: str) -> None:
        self.http = http
        self.base_url = base_url
        self._sleep = sleep

    def run(self, plan: Plan[T]) -> T:
        """Drive `plan` to completion and return its value (or raise its error)."""
        outcome: Outcome = None
        try:
            while True:
                try:
                    action = plan.send(outcome)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                if isinstance(action, Sleep):
                    self._sleep(action.seconds)
                    outcome = None
                else:
                    outcome = self._send(action)
        finally:
            plan.close()

    def _send(self, request: Request) -> Reply | Failure:
        try:
            response = self.http.send(_build(self.http, self.base_url, request), stream=True)
        except httpx.TransportError as exc:
            return _failure(exc)
        if _keeps_open(request, response):
            return Reply(response.status_code, _headers(response), stream=response)
        try:
            body = response.read()
        except httpx.TransportError as exc:
            return _failure(exc)
        finally:
            response.close()
        return Reply(response.status_code, _headers(response), body)


class AsyncDriver:
    """Runs plans with an `httpx.AsyncClient` and an awaitable `sleep`."""

    def __init__(
        self, http: httpx.AsyncClient, sleep: Callable[[float], Awaitable[Any]], base_url: str
    ) -> None:
        self.http = http
        self.base_url = base_url
        self._sleep = sleep

    async def run(self, plan: Plan[T]) -> T:
        """Drive `plan` to completion and return its value (or raise its error)."""
        outcome: Outcome = None
        try:
            while True:
                try:
                    action = plan.send(outcome)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                if isinstance(action, Sleep):
                    await self._sleep(action.seconds)
                    outcome = None
                else:
                    outcome = await self._send(action)
        finally:
            plan.close()

    async def _send(self, request: Request) -> Reply | Failure:
        try:
            response = await self.http.send(_build(self.http, self.base_url, request), stream=True)
        except httpx.TransportError as exc:
            return _failure(exc)
        if _keeps_open(request, response):
            return Reply(response.status_code, _headers(response), stream=response)
        try:
            body = await response.aread()
        except httpx.TransportError as exc:
            return _failure(exc)
        finally:
            await response.aclose()
        return Reply(response.status_code, _headers(response), body)
