"""Container log lines made safe to pass on: no NUL or other control bytes, bounded length.

What a container prints is untrusted: it may hold NUL bytes, terminal escape sequences or one
line of gigabytes. The agent splits what Docker streams into lines with `LineSplitter`, and the
deployer cleans what a device sends with `clean_line` again (a device is trusted only as itself).
"""

from __future__ import annotations

import re

DEFAULT_MAX_LINE_CHARS = 8192
TRUNCATED_MARK = " [truncated]"
# C0 controls but tab, DEL, and C1 controls: NUL, escape sequences, carriage returns, bells.
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean_line(line: str, max_chars: int = DEFAULT_MAX_LINE_CHARS) -> tuple[str, bool]:
    """Return the line without control characters and cut to `max_chars`, and whether it was cut."""
    line = _CONTROLS.sub("", line)
    if len(line) <= max_chars:
        return line, False
    return line[:max_chars] + TRUNCATED_MARK, True


class LineSplitter:
    """Splits a byte stream into clean lines, never holding more than one bounded line.

    The rest of a line past `max_chars` is dropped as it arrives, so a line without end costs
    no memory; `truncated` says whether any line was cut.
    """

    def __init__(self, max_chars: int = DEFAULT_MAX_LINE_CHARS) -> None:
        self.max_chars = max_chars
        self._partial = bytearray()
        self._cut = False
        self.truncated = False

    def feed(self, data: bytes) -> list[str]:
        """Return the lines `data` completes."""
        lines: list[str] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._keep(data[start:])
                return lines
            self._keep(data[start:end])
            lines.append(self._take())
            start = end + 1

    def finish(self) -> list[str]:
        """Return the last line if the stream ended without a newline."""
        return [self._take()] if self._partial or self._cut else []

    def _keep(self, piece: bytes) -> None:
        # Up to 4 bytes per character in UTF-8: keep enough bytes for `max_chars` characters.
        room = self.max_chars * 4 + 4 - len(self._partial)
        if len(piece) > room:
            piece = piece[: max(room, 0)]
            self._cut = True
        self._partial += piece

    def _take(self) -> str:
        text = self._partial.decode("utf-8", "replace")
        line, cut = clean_line(text, self.max_chars)
        if self._cut and not cut:
            line += TRUNCATED_MARK
        self.truncated = self.truncated or cut or self._cut
        self._partial.clear()
        self._cut = False
        return line
