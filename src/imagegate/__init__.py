"""imagegate: a self-hosted, OpenAI-compatible image-generation gateway.

`from imagegate import Client, AsyncClient` gives the SDK; they are imported on first use,
so `import imagegate` stays cheap for the server side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from imagegate.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from imagegate import client

        return getattr(client, name)
    raise AttributeError(f"module 'imagegate' has no attribute {name!r}")
