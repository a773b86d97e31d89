"""`Client` and `AsyncClient`: thin shells that run the shared core's plans over httpx.

Both take the same arguments. Key and base URL come from the arguments, else from
IMAGEGATE_API_KEY / IMAGEGATE_BASE_URL, else from OPENAI_API_KEY / OPENAI_BASE_URL. With no
base URL anywhere, an OpenAI key alone means api.openai.com; otherwise a local imagegate
(http://127.0.0.1:8000/v1). `sleep`, `clock` and `random` are injectable, so tests can check
every retry delay without waiting.
"""

from __future__ import annotations

import asyncio
import os
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypedDict, Unpack

import httpx

from imagegate.client import _imagejobs
from imagegate.client import batch as _batch
from imagegate.client._core import Core
from imagegate.client._errors import ImagegateError
from imagegate.client._inputs import ImageInput, load_input, load_inputs
from imagegate.client._jobhandles import AsyncImageJob, AsyncJobs, ImageJob, Jobs
from imagegate.client._jobs import BatchOptions
from imagegate.client._plan import Env, Observer
from imagegate.client._requests import Call, ImageParams, make_call
from imagegate.client._retry import RetryPolicy
from imagegate.client._stream import StreamSession, open_stream
from imagegate.client._transport import AsyncDriver, SyncDriver
from imagegate.client._types import ImageResult, StreamEvent
from imagegate.client.cache import ImageCache
from imagegate.client.monitor import Monitor, default_home
from imagegate.client.pricing import DEFAULT_MODEL, PriceTable, micro_to_usd

LOCAL_BASE_URL = "http://127.0.0.1:8000/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)

ImagesArg = ImageInput | list[ImageInput] | tuple[ImageInput, ...]


def resolve_connection(
    api_key: str | None = None, base_url: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(api key, base URL) from the arguments, then IMAGEGATE_*, then OPENAI_* variables."""
    env = os.environ if environ is None else environ
    key = api_key or env.get("IMAGEGATE_API_KEY") or env.get("OPENAI_API_KEY")
    url = base_url or env.get("IMAGEGATE_BASE_URL") or env.get("OPENAI_BASE_URL")
    if not url:
        only_openai = not api_key and not env.get("IMAGEGATE_API_KEY") and bool(env.get("OPENAI_API_KEY"))
        url = OPENAI_BASE_URL if only_openai else LOCAL_BASE_URL
    if not key:
        raise ImagegateError("No API key: pass api_key=..., or set IMAGEGATE_API_KEY (or OPENAI_API_KEY).")
    return key, url.rstrip("/")


def _cache(cache: ImageCache | str | os.PathLike[str] | bool | None) -> ImageCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return ImageCache(default_home() / "cache")
    if isinstance(cache, ImageCache):
        return cache
    return ImageCache(cache)


class ClientOptions(TypedDict, total=False):
    """Keyword options shared by `Client` and `AsyncClient`.

    max_retries: retries after the first attempt (default 2, as openai-python).
    cache: an ImageCache, a directory, or True for $IMAGEGATE_HOME/cache; off by default.
    monitor: where calls are recorded (default: a fresh in-memory Monitor).
    pricing: a PriceTable to use; default None = the server's GET /v1/pricing, else OpenAI's.
    default_model: the model when a call names none (default gpt-image-1).
    default_headers: extra headers on every request.
    clock, random: injectable time.time and random.random (retry delays, latency, jitter).
    """

    max_retries: int
    cache: ImageCache | str | os.PathLike[str] | bool | None
    monitor: Monitor | None
    pricing: PriceTable | None
    default_model: str
    default_headers: Mapping[str, str] | None
    clock: Callable[[], float]
    random: Callable[[], float]


class _Shell:
    """What both clients share: configuration and the pure (no I/O) helpers."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        max_retries: int = 2,
        cache: ImageCache | str | os.PathLike[str] | bool | None = None,
        monitor: Monitor | None = None,
        pricing: PriceTable | None = None,
        default_model: str = DEFAULT_MODEL,
        default_headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        flavour: str = "sync",
    ) -> None:
        self.api_key, self.base_url = resolve_connection(api_key, base_url)
        self.default_model = default_model
        self.cache = _cache(cache)
        self.monitor = monitor if monitor is not None else Monitor()
        self._core = Core(
            api_key=self.api_key,
            base_url=self.base_url,
            policy=RetryPolicy(max_retries=max_retries),
            env=Env(clock=clock, random=random),
            cache=self.cache,
            monitor=self.monitor,
            pricing=pricing,
            default_headers=default_headers or {},
            flavour=flavour,
        )

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt (openai-python's default: 2)."""
        return self._core.policy.max_retries

    def _generate_call(self, prompt: str, params: Mapping[str, Any]) -> Call:
        return make_call("generate", prompt, params, self.default_model)

    def _edit_call(
        self, images: ImagesArg, prompt: str, mask: ImageInput | None, params: Mapping[str, Any]
    ) -> Call:
        refs = tuple(load_inputs(images if isinstance(images, list | tuple) else [images]))
        mask_ref = load_input(mask, "mask") if mask is not None else None
        return make_call("edit", prompt, params, self.default_model, refs, mask_ref)

    def _any_call(
        self, prompt: str, images: ImagesArg | None, mask: ImageInput | None, params: Mapping[str, Any]
    ) -> Call:
        if images is None:
            if mask is not None:
                raise ValueError("a mask needs the images it masks: pass images=...")
            return self._generate_call(prompt, params)
        return self._edit_call(images, prompt, mask, params)


class Client(_Shell):
    """The synchronous imagegate client (works with any OpenAI-compatible images API).

    `Client(api_key=None, base_url=None, *, timeout=600 s (5 s connect), http_client=None,
    sleep=time.sleep, **ClientOptions)`; see the module docstring for the environment
    fallbacks and `ClientOptions` for the rest. Use it as a context manager, or call close().
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(api_key, base_url, flavour="sync", **options)
        self._http = http_client or httpx.Client(timeout=timeout)
        self._owns_http = http_client is None
        self._sleep = sleep
        self._driver = SyncDriver(self._http, sleep, self.base_url)
        self.jobs = Jobs(self._core, self._driver, self.default_model)

    def _execute(self, call: Call, observe: Observer | None = None) -> ImageResult:
        return self._driver.run(self._core.images(call, observe))

    def generate(self, prompt: str, **params: Unpack[ImageParams]) -> ImageResult:
        """Create images from a prompt (POST /v1/images/generations)."""
        return self._execute(self._generate_call(prompt, params))

    def edit(
        self, images: ImagesArg, prompt: str, *, mask: ImageInput | None = None, **params: Unpack[ImageParams]
    ) -> ImageResult:
        """Edit or combine reference images (paths, bytes, files, PIL images or URLs) with a prompt."""
        return self._execute(self._edit_call(images, prompt, mask, params))

    def submit(
        self,
        prompt: str,
        *,
        images: ImagesArg | None = None,
        mask: ImageInput | None = None,
        webhook_url: str | None = None,
        **params: Unpack[ImageParams],
    ) -> ImageJob:
        """Submit a generation (or, with `images`, an edit) as an asynchronous job: the server
        answers at once (202) and runs it; `job.wait()` gives the ImageResult `generate` would.
        Carries an Idempotency-Key (`idempotency_key=...`, else a fresh one) reused by retries."""
        call = self._any_call(prompt, images, mask, params)
        return ImageJob(
            self._core, self._driver, self._driver.run(_imagejobs.submit(self._core, call, webhook_url))
        )

    def stream(
        self,
        prompt: str,
        *,
        images: ImagesArg | None = None,
        mask: ImageInput | None = None,
        **params: Unpack[ImageParams],
    ) -> Iterator[StreamEvent]:
        """Stream a generation (or, with `images`, an edit): partial images, then completed ones."""
        partial_images = params.pop("partial_images", None)
        call = self._any_call(prompt, images, mask, params)
        session: StreamSession = self._driver.run(open_stream(self._core, call, partial_images))
        response: httpx.Response = session.response
        try:
            for line in response.iter_lines():
                yield from session.feed(line)
        except httpx.TransportError as exc:
            raise session.broken(exc) from exc
        finally:
            response.close()
        yield from session.finish()

    def pricing(self) -> PriceTable:
        """The price table in force: the server's (GET /v1/pricing) or the default."""
        return self._driver.run(self._core.price_table())

    def estimate_cost(
        self, prompt: str = "", *, images: ImagesArg | None = None, **params: Unpack[ImageParams]
    ) -> float:
        """Dollars a call with these parameters should cost (nothing is generated)."""
        partial = int(params.pop("partial_images", 0) or 0)
        call = self._any_call(prompt, images, None, params)
        return micro_to_usd(self._driver.run(self._core.estimate(call, partial)))

    def models(self) -> list[dict[str, Any]]:
        """The models the server offers (GET /v1/models)."""
        return self._driver.run(self._core.models())

    def batch(self, jobs: _batch.JobsArg, **options: Unpack[BatchOptions]) -> _batch.BatchResult:
        """Run many jobs concurrently; see `imagegate.client.batch` for the options."""
        return _batch.run_sync(self, jobs, **options)

    def close(self) -> None:
        """Close the HTTP connection pool (if this client created it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_Shell):
    """The asyncio imagegate client: the same arguments and methods as `Client`, awaited.

    `sleep` must be awaitable (default asyncio.sleep); `stream` is an async iterator.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(api_key, base_url, flavour="async", **options)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http_client is None
        self._sleep = sleep
        self._driver = AsyncDriver(self._http, sleep, self.base_url)
        self.jobs = AsyncJobs(self._core, self._driver, self.default_model)

    async def _execute(self, call: Call, observe: Observer | None = None) -> ImageResult:
        return await self._driver.run(self._core.images(call, observe))

    async def generate(self, prompt: str, **params: Unpack[ImageParams]) -> ImageResult:
        """Create images from a prompt (POST /v1/images/generations)."""
        return await self._execute(self._generate_call(prompt, params))

    async def edit(
        self, images: ImagesArg, prompt: str, *, mask: ImageInput | None = None, **params: Unpack[ImageParams]
    ) -> ImageResult:
        """Edit or combine reference images (paths, bytes, files, PIL images or URLs) with a prompt."""
        return await self._execute(self._edit_call(images, prompt, mask, params))

    async def submit(
        self,
        prompt: str,
        *,
        images: ImagesArg | None = None,
        mask: ImageInput | None = None,
        webhook_url: str | None = None,
        **params: Unpack[ImageParams],
    ) -> AsyncImageJob:
        """Submit a generation (or, with `images`, an edit) as an asynchronous job; see `Client.submit`."""
        call = self._any_call(prompt, images, mask, params)
        job = await self._driver.run(_imagejobs.submit(self._core, call, webhook_url))
        return AsyncImageJob(self._core, self._driver, job)

    async def stream(
        self,
        prompt: str,
        *,
        images: ImagesArg | None = None,
        mask: ImageInput | None = None,
        **params: Unpack[ImageParams],
    ) -> AsyncIterator[StreamEvent]:
        """Stream a generation (or, with `images`, an edit): partial images, then completed ones."""
        partial_images = params.pop("partial_images", None)
        call = self._any_call(prompt, images, mask, params)
        session: StreamSession = await self._driver.run(open_stream(self._core, call, partial_images))
        response: httpx.Response = session.response
        try:
            async for line in response.aiter_lines():
                for event in session.feed(line):
                    yield event
        except httpx.TransportError as exc:
            raise session.broken(exc) from exc
        finally:
            await response.aclose()
        for event in session.finish():
            yield event

    async def pricing(self) -> PriceTable:
        """The price table in force: the server's (GET /v1/pricing) or the default."""
        return await self._driver.run(self._core.price_table())

    async def estimate_cost(
        self, prompt: str = "", *, images: ImagesArg | None = None, **params: Unpack[ImageParams]
    ) -> float:
        """Dollars a call with these parameters should cost (nothing is generated)."""
        partial = int(params.pop("partial_images", 0) or 0)
        call = self._any_call(prompt, images, None, params)
        return micro_to_usd(await self._driver.run(self._core.estimate(call, partial)))

    async def models(self) -> list[dict[str, Any]]:
        """The models the server offers (GET /v1/models)."""
        return await self._driver.run(self._core.models())

    async def batch(self, jobs: _batch.JobsArg, **options: Unpack[BatchOptions]) -> _batch.BatchResult:
        """Run many jobs concurrently; see `imagegate.client.batch` for the options."""
        return await _batch.run_async(self, jobs, **options)

    async def aclose(self) -> None:
        """Close the HTTP connection pool (if this client created it)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
