"""One process of `imagegate serve --workers N`: uvicorn's supervisor starts each afresh (spawn)
and builds its app by the import string `imagegate.http.workers:worker_app`.

A worker must not outlive its supervisor: killed with SIGKILL (the OOM killer, `kill -9`), the
supervisor cannot stop its workers, which would go on serving the port (and running jobs) with
nobody to restart or stop them. Each worker asks Linux to send it SIGTERM when its parent dies
(`PR_SET_PDEATHSIG`), and exits at once if the parent is already gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

from fastapi import FastAPI

from imagegate.config import Settings
from imagegate.http.app import create_app
from imagegate.http.connections import SettingsHttp
from imagegate.http.logs import configure as configure_logs
from imagegate.malloc import keep_large_buffers

PR_SET_PDEATHSIG = 1
SUPERVISOR_PID = "IMAGEGATE_SUPERVISOR_PID"  # set by `serve` before it starts the workers


def worker_app() -> FastAPI:
    """The app of one worker, from the settings in its environment."""
    die_with_supervisor()
    settings = Settings()
    configure_logs(settings.log_format)  # a fresh process: the supervisor's handlers are not here
    if settings.keep_large_buffers:
        keep_large_buffers()
    SettingsHttp.configure(settings)
    return create_app(settings)


def die_with_supervisor() -> None:
    """SIGTERM to this process when its parent dies (Linux); elsewhere nothing."""
    name = ctypes.util.find_library("c")
    try:
        prctl = ctypes.CDLL(name).prctl if name else None
    except (OSError, AttributeError):
        prctl = None
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    expected = os.environ.get(SUPERVISOR_PID)
    if expected and os.getppid() != int(expected):  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)
