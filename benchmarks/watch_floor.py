"""The floor under any Python operator's CPU: watching what Tandem's operator watches, and nothing else.

B3 judges the operator on CPU per job against Go operators. This process opens the same watches
as the operator (TrainingJobs, and its children selected by JOB_NAME_LABEL, cluster-wide; the
same aiohttp transport and orjson decoder) and only reads and decodes each event: no kopf, no
cache, no reconcile, no writes. Its CPU per job, measured in the same B3 row as the operator's,
is what a Python operator pays before it does anything with an event; if that alone is near a
Go operator's whole cost, no cut inside the operator reaches it.

Run by `b3_controller.py --watch-floor` beside Tandem's rows. On SIGTERM it prints one JSON
line: events and bytes per resource, and its CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))

from tandem.controller.apiclient import endpoint
from tandem.controller.informer import streams as operator_streams
from tandem.controller.watching import LIST_PAGE_SIZE

#: Each watch request's server-side timeout (the operator's is longer; a reconnect is cheap).
WATCH_SECONDS = 300


def streams() -> list[tuple[str, str, dict[str, str]]]:
    """(name, collection path, query) of every watch the operator opens, cluster-wide."""
    return [(stream.watched.plural, stream.path, stream.query()) for stream in operator_streams(())]


async def watch(session: aiohttp.ClientSession, server: str, headers: dict[str, str], name: str, path: str,
                query: dict[str, str], events: Counter[str], sizes: Counter[str]) -> None:
    """List (for the resourceVersion to start from), then watch and decode every event, forever."""
    listed = await (await session.get(server + path, params={**query, "limit": str(LIST_PAGE_SIZE)},
                                      headers=headers)).read()
    version = orjson.loads(listed)["metadata"]["resourceVersion"]
    while True:
        params = {**query, "watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(WATCH_SECONDS)}
        async with session.get(server + path, params=params, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=None)) as response:
            async for line in response.content:
                event: Any = orjson.loads(line)
                events[name] += 1
                sizes[name] += len(line)
                version = event["object"]["metadata"].get("resourceVersion", version)


async def main() -> None:
    where = endpoint()
    headers = where.headers("application/json")
    events: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    connector = aiohttp.TCPConnector(ssl=where.ssl_context or False)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(watch(session, where.server, headers, name, path, query, events, sizes))
                 for name, path, query in streams()]
        print("watching", flush=True)
        await stop.wait()
        for task in tasks:
            task.cancel()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"events": dict(events), "bytes": dict(sizes),
                      "cpu_seconds": usage.ru_utime + usage.ru_stime}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
