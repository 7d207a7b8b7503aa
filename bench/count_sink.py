"""An aiosmtpd sink in its own process that counts copies and Message-IDs per recipient.

python -m bench.count_sink PORT OUT.json   (writes OUT.json on SIGTERM)
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


class Counting:
    def __init__(self) -> None:
        self.messages = 0
        self.per_recipient: Counter[str] = Counter()
        self.ids: dict[str, set[str]] = defaultdict(set)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data: bytes = envelope.original_content or envelope.content
        match = _MESSAGE_ID.search(data.split(b"\r\n\r\n", 1)[0])
        message_id = match.group(1).decode() if match else ""
        self.messages += 1
        for rcpt in envelope.rcpt_tos:
            self.per_recipient[rcpt] += 1
            self.ids[rcpt].add(message_id)
        return "250 OK"


def main() -> None:
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    handler = Counting()
    controller = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()
    out.write_text(
        json.dumps(
            {
                "messages": handler.messages,
                "per_recipient": dict(handler.per_recipient),
                "mixed_ids": sum(1 for ids in handler.ids.values() if len(ids) > 1),
            }
        )
    )


if __name__ == "__main__":
    main()
