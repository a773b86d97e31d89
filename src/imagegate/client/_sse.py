"""A minimal server-sent-events decoder (sans-IO: feed it lines, get whole events back)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One SSE event: its `event:` name (if any) and its joined `data:` lines."""

    event: str | None
    data: str


class SSEDecoder:
    """Accumulates `event:`/`data:` lines; a blank line ends an event."""

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> list[ServerEvent]:
        """Consume one line (without its line break); return the events it completed."""
        if not line:
            return self.flush()
        if line.startswith(":"):
            return []
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return []

    def flush(self) -> list[ServerEvent]:
        """The pending event, if any (also at the end of the stream)."""
        if not self._data:
            self._event = None
            return []
        event = ServerEvent(self._event, "\n".join(self._data))
        self._event, self._data = None, []
        return [event]
