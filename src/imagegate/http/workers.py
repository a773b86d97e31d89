"""One process of `imagegate serve --workers N`: uvicorn's supervisor starts each afresh (spawn)
and builds its app by the import string `imagegate.http.workers:worker_app`."""

from __future__ import annotations

from fastapi import FastAPI

from imagegate.config import Settings
from imagegate.http.app import create_app
from imagegate.http.connections import SettingsHttp
from imagegate.http.logs import configure as configure_logs
from imagegate.process import die_with_supervisor, keep_large_buffers


def worker_app() -> FastAPI:
    """The app of one worker, from the settings in its environment."""
    die_with_supervisor()  # imagegate/process.py: never outlive the supervisor
    settings = Settings()
    configure_logs(settings.log_format)  # a fresh process: the supervisor's handlers are not here
    if settings.keep_large_buffers:
        keep_large_buffers()
    SettingsHttp.configure(settings)
    return create_app(settings)
