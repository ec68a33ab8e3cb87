"""What a system costs per job in figures a busy machine cannot bend (B3): the CPU seconds of
its processes, its API requests counted from the apiserver's audit log, and where a profile's
samples went. Standard library and Tandem's foundation only, so that the unit tests read it in
milliseconds."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Iterable

from tandem._sys import proctree


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of its waited-for children, in seconds; NaN once it is gone."""
    seconds = proctree.cpu_seconds(pid)
    return float("nan") if seconds is None else seconds


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def requests_by_agent(requests: Iterable[tuple[str, str]]) -> Counter[str]:
    """The requests (`requests_in_window`) by user agent."""
    return Counter(agent for agent, _ in requests)


def requests_by_kind(requests: Iterable[tuple[str, str]], agents: tuple[str, ...]) -> Counter[str]:
    """The requests of the user agents starting with `agents`, by "verb resource[/subresource]"
    (e.g. "patch trainingjobs/status"): which writes and reads a job costs, the figure a cut of
    requests per job starts from."""
    return Counter(kind for agent, kind in requests if agent.startswith(agents))


def requests_in_window(audit_log: Path, offset: int, since: float, until: float) -> list[tuple[str, str]]:
    """(user agent, "verb resource[/subresource]") of each request received between `since` and
    `until`, from the audit log past byte `offset`: one per auditID (a watch is logged when its
    response starts and again when it ends)."""
    seen: dict[str, tuple[str, str]] = {}
    with audit_log.open("rb") as log:
        log.seek(offset)
        for line in log:
            try:
                event = json.loads(line)
                received = stamp(event["requestReceivedTimestamp"])
            except (ValueError, KeyError):
                continue
            if since <= received <= until:
                ref = event.get("objectRef") or {}
                resource = "/".join(part for part in (ref.get("resource", ""), ref.get("subresource", "")) if part)
                kind = f"{event.get('verb', '')} {resource or event.get('requestURI', '')}"
                seen.setdefault(event.get("auditID", ""), (event.get("userAgent", ""), kind))
    return list(seen.values())


#: Where a profiled Tandem row's samples go, by the file of their frame (py-spy's short names).
PROFILE_PACKAGES = (("tandem", "tandem/"), ("kopf", "kopf/"), ("kubernetes client", "kubernetes/"),
                    ("urllib3", "urllib3/"), ("aiohttp", "aiohttp/"), ("json", "json/"), ("yaml", "yaml/"),
                    ("pydantic", "pydantic"), ("asyncio", "asyncio/"), ("logging", "logging/"),
                    ("ssl / http", "ssl.py"), ("threading", "threading.py"), ("copy.deepcopy", "copy.py"),
                    ("thread pools", "concurrent/futures/"))


#: Innermost frames where a thread waits rather than computes (a reply from the API server, an
#: idle pool worker, the event loop's selector): py-spy's --nonblocking mode cannot always tell
#: them idle, so their samples are a bucket of their own instead of counting as their package's.
WAITING = ("SSLSocket.read (", "SSLObject.read (", "_worker (concurrent/futures/thread.py", "Condition.wait (",
           "Event.wait (", "EpollSelector.select (", "do_poll (urllib3/util/wait.py")
WAITING_BUCKET = "waiting (API replies, idle pool, selector)"


def profile_summary(folded: Path) -> tuple[int, list[tuple[str, float, float]]]:
    """(samples, [(package, self share, inclusive share)]) of py-spy's folded stacks: self is where
    the sample's innermost frame was, inclusive whether any frame of the stack was in it."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")[1:]  # the first is the thread
        names = [package_of(frame) for frame in frames]
        waiting = bool(frames) and frames[-1].startswith(WAITING)
        own[WAITING_BUCKET if waiting else names[-1] if names else "other"] += count
        for name in set(names):
            anywhere[name] += count
    rows = sorted(((name, own[name] / total, anywhere[name] / total) for name in set(own) | set(anywhere)),
                  key=lambda row: -row[2]) if total else []
    return total, rows


def package_of(frame: str) -> str:
    """The package a py-spy frame ("function (path/file.py:line)") belongs to."""
    where = frame[frame.rfind("(") + 1:]
    for name, marker in PROFILE_PACKAGES:
        if where.startswith(marker) or f"/{marker}" in where:
            return name
    return "other"
