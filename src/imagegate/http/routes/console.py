"""The web console at /console: its page and assets (files inside the package, no build step), and
its own JSON API under /console/api/, for a browser signed in with the admin key (the operator) or
with an API key (a key holder).

Sign-in makes a server-side session (storage/sessions.py, shared by replicas); the browser holds
only its random id, in an HttpOnly, SameSite=Strict cookie scoped to /console (Secure over https).
Every state-changing call must carry the session's CSRF token in `X-CSRF-Token` and, when the
browser sends one, an `Origin` of this server. Nothing secret travels in a URL or is kept in the
page's storage: the key typed at sign-in is sent once, in a POST body.

The API calls the same code as the images API and the admin API (http/routes/images.py, admin.py,
history.py; accounts.py, channels.py, flow/run.py): a console generation is an images request of
the signed-in key, charged, limited and recorded as any other.
"""

from __future__ import annotations

import hmac
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from imagegate.accounts import Accounts
from imagegate.breakers.base import BreakerUnavailable
from imagegate.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from imagegate.flow.request import ImageRequest
from imagegate.http import guard
from imagegate.http.routes import admin, history, images
from imagegate.storage.keys import ApiKey
from imagegate.storage.sessions import ConsoleSession, Role, SessionRepo

router = APIRouter(prefix="/console", include_in_schema=False)

COOKIE = "imagegate_console"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_ASSETS = files("imagegate.http") / "console"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The console's own files only; inline styles set through the DOM (element.style) are not
# governed by style-src, and every image the page shows is this server's, or data:/blob: it built.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


# --- the page and its assets ------------------------------------------------------------------


@router.get("")
async def console_root() -> Response:
    return RedirectResponse("/console/", status_code=308)


@router.get("/")
async def console_page() -> Response:
    return _asset("index.html")


@router.get("/static/{name}")
async def console_asset(name: str) -> Response:
    return _asset(name)


def _asset(name: str) -> Response:
    suffix = "." + name.rpartition(".")[2]
    # Flat names only: no "..", no sub-folders, a known type.
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in _MEDIA_TYPES:
        raise NotFound(f"No console file '{name}'.", code="not_found")
    resource = _ASSETS / name
    if not resource.is_file():
        raise NotFound(f"No console file '{name}'.", code="not_found")
    return Response(resource.read_bytes(), media_type=_MEDIA_TYPES[suffix], headers=_PAGE_HEADERS)


# --- sessions -----------------------------------------------------------------------------------


def _sessions(request: Request) -> SessionRepo:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


def _check_origin(request: Request) -> None:
    """A cross-site request (an Origin that is not this server's) never changes anything."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser's cross-origin call (those always send Origin); the token still counts
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    public = request.app.state.settings.public_base_url
    if public:
        own.add(public.rstrip("/"))
    if origin not in own:
        raise PermissionDenied("Cross-origin request refused by the console.", code="csrf_origin_mismatch")


async def current_session(request: Request) -> ConsoleSession:
    session_id = request.cookies.get(COOKIE)
    session: ConsoleSession | None = None
    if session_id:  # in a thread: an expired session is deleted as it is met
        session = await request.app.state.stores.db.run_in_thread(_sessions(request).get, session_id)
    if session is None:
        raise AuthenticationFailed("Sign in to the console first.", code="console_signed_out")
    if request.method not in _SAFE_METHODS:
        _check_origin(request)
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), session.csrf_token.encode()):
            raise PermissionDenied(
                "Missing or wrong CSRF token: send the session's token in the X-CSRF-Token header.",
                code="csrf_token_invalid",
            )
    return session


SessionDep = Annotated[ConsoleSession, Depends(current_session)]


async def operator(request: Request, session: SessionDep) -> Accounts:
    if session.role != "operator":
        raise PermissionDenied(
            "Only the operator (signed in with the admin key) may do this.", code="operator_only"
        )
    admin_key = request.app.state.settings.admin_key
    if not admin_key or not session.signed_in_with(admin_key):
        raise AuthenticationFailed(
            "The admin key changed since this sign-in: sign in again.", code="console_signed_out"
        )
    return request.app.state.accounts  # type: ignore[no-any-return]


OperatorDep = Annotated[Accounts, Depends(operator)]


async def key_holder(request: Request, session: SessionDep) -> ApiKey:
    if session.role != "key" or session.key_id is None:
        raise PermissionDenied(
            "The playground, history and account are an API key's: sign in with an API key.",
            code="key_holder_only",
        )
    key = await request.app.state.stores.db.read(request.app.state.stores.keys.get, session.key_id)
    if key is None or not key.usable_at(request.app.state.clock.now()):
        raise AuthenticationFailed("This API key is revoked or expired.", code="invalid_api_key")
    return key  # type: ignore[no-any-return]


KeyHolderDep = Annotated[ApiKey, Depends(key_holder)]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=200, description="The admin key or an API key.")


@router.post("/api/session")
async def sign_in(body: SignIn, request: Request) -> JSONResponse:
    _check_origin(request)
    admin_key = request.app.state.settings.admin_key
    role: Role
    key: ApiKey | None = None
    secret = body.key.strip()
    if admin_key and hmac.compare_digest(secret.encode("utf-8", "surrogatepass"), admin_key.encode()):
        role = "operator"
    else:
        try:
            key = await request.app.state.flow.authenticate(f"Bearer {secret}")  # 401 as the API's
        except AuthenticationFailed:
            await guard.admitted(request, right_key=False)  # 429 past the limit
            raise
        role = "key"
    await guard.admitted(request, right_key=True)  # 429 while the address is blocked
    db = request.app.state.stores.db
    if previous := request.cookies.get(COOKIE):  # a new sign-in replaces the browser's last one
        await db.run_in_thread(_sessions(request).delete, previous)
    session_id, session = await db.run_in_thread(
        _sessions(request).create,
        role,
        key.id if key is not None else None,
        admin_key if role == "operator" else None,
    )
    response = JSONResponse(await _describe(request, session, key), headers={"cache-control": "no-store"})
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(session.expires_at - request.app.state.clock.now()),
        path="/console",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    # The sign-in is a good moment to drop the sessions that expired (one statement, indexed).
    response.background = BackgroundTask(db.run_in_thread, _sessions(request).purge)
    return response


@router.get("/api/session")
async def who_am_i(request: Request) -> dict[str, Any]:
    """The page asks on loading whether it is signed in: "no" is an answer, not an error (also
    when the key was revoked or the admin key changed since)."""
    try:
        session = await current_session(request)
        if session.role == "operator":
            await operator(request, session)
            return await _describe(request, session, None)
        return await _describe(request, session, await key_holder(request, session))
    except AuthenticationFailed:
        return {"signed_in": False}


@router.delete("/api/session")
async def sign_out(request: Request, _session: SessionDep) -> JSONResponse:
    await request.app.state.stores.db.run_in_thread(_sessions(request).delete, request.cookies[COOKIE])
    response = JSONResponse({"signed_in": False})
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


async def _describe(request: Request, session: ConsoleSession, key: ApiKey | None) -> dict[str, Any]:
    return {
        "signed_in": True,
        "role": session.role,
        "csrf_token": session.csrf_token,  # read by the page's script; useless to another site
        "expires_at": session.expires_at,
        "key": request.app.state.accounts.view(key) if key is not None else None,
        "models": request.app.state.flow.registry.models(),
    }


# --- a key holder: playground, account, history -------------------------------------------------


@router.post("/api/images/generations")
async def generate(request: Request, key: KeyHolderDep) -> Response:
    params = await images.json_body(request)
    return await images.run_request(ImageRequest("generation", params), request, request.app.state.flow, key)


@router.post("/api/images/edits")
async def edit(request: Request, key: KeyHolderDep) -> Response:
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InvalidRequest(
            "The console sends edits as multipart/form-data.", code="unsupported_content_type"
        )
    image_request, form = await images.multipart(request)
    try:
        response = await images.run_request(image_request, request, request.app.state.flow, key)
    except BaseException:
        await form.close()
        raise
    response.background = BackgroundTask(form.close)
    return response


@router.get("/api/account")
async def account(request: Request, key: KeyHolderDep) -> dict[str, Any]:
    accounts, db = request.app.state.accounts, request.app.state.stores.db
    return await db.read_in_thread(accounts.account, key)  # type: ignore[no-any-return]


@router.get("/api/history")
async def own_history(request: Request, key: KeyHolderDep, page: history.PageDep) -> dict[str, Any]:
    return await history.history_page(request, page, key.id, admin=False)


# --- the operator: keys, channels, usage, jobs --------------------------------------------------


@router.get("/api/keys")
async def list_keys(accounts: OperatorDep, request: Request) -> dict[str, Any]:
    return await admin.list_keys(accounts, request)


@router.post("/api/keys", status_code=201)
async def create_key(body: admin.KeyCreate, accounts: OperatorDep, request: Request) -> JSONResponse:
    response = await admin.create_key(body, accounts, request)
    response.headers["cache-control"] = "no-store"  # the secret, shown once
    return response


@router.patch("/api/keys/{ident}")
async def update_key(
    ident: str, body: admin.KeyUpdate, accounts: OperatorDep, request: Request
) -> dict[str, Any]:
    return await admin.update_key(ident, body, accounts, request)


@router.delete("/api/keys/{ident}")
async def revoke_key(ident: str, accounts: OperatorDep, request: Request) -> dict[str, Any]:
    return await admin.revoke_key(ident, accounts, request)


@router.post("/api/keys/{ident}/credits")
async def add_credit(
    ident: str, body: admin.Credit, accounts: OperatorDep, request: Request
) -> dict[str, Any]:
    return await admin.add_credit(ident, body, accounts, request)


@router.get("/api/channels")
async def list_channels(_accounts: OperatorDep, request: Request) -> dict[str, Any]:
    listed = await admin.list_channels(request.app.state.channels, request)
    breaker, now = request.app.state.flow.router.breaker, request.app.state.clock.now()
    for channel in listed["data"]:
        try:
            state = await breaker.state(channel["name"], now)
            channel["breaker"] = {"state": state.state, "reason": state.reason, "opened_at": state.opened_at}
        except BreakerUnavailable:
            channel["breaker"] = None
    return listed


@router.post("/api/channels", status_code=201)
async def create_channel(body: admin.ChannelCreate, _accounts: OperatorDep, request: Request) -> JSONResponse:
    return await admin.create_channel(body, request.app.state.channels, request)


@router.patch("/api/channels/{ident}")
async def update_channel(
    ident: str, body: admin.ChannelUpdate, _accounts: OperatorDep, request: Request
) -> dict[str, Any]:
    return await admin.update_channel(ident, body, request.app.state.channels, request)


@router.post("/api/channels/{ident}/test")
async def test_channel(ident: str, _accounts: OperatorDep, request: Request) -> dict[str, Any]:
    """One cheap request (a low-quality image) through the channel; its answer, not its price."""
    channel = await request.app.state.stores.db.read(request.app.state.stores.channels.get, ident)
    if channel is None:
        raise NotFound(f"No channel '{ident}'.", code="channel_not_found")
    error = await request.app.state.maintenance.prober.try_once(channel)
    return {"id": channel.id, "name": channel.name, "ok": error is None, "error": error}


@router.get("/api/usage")
async def usage(
    accounts: OperatorDep,
    request: Request,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    by: admin.UsageBy = "key",
) -> dict[str, Any]:
    return await admin.usage(accounts, request, None, days, by)


@router.get("/api/jobs")
async def jobs(_accounts: OperatorDep, request: Request) -> dict[str, Any]:
    stores = request.app.state.stores
    return {"object": "job_counts", "counts": await stores.db.read(stores.jobs.counts)}
