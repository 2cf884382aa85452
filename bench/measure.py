"""What the benchmark scripts share: a throwaway homeserver, the machine's description, a process's CPU and memory."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapter.devserver import LocalHomeserver
from tests.support.postgres import LocalPostgres
from tests.support.synapse import SynapseServer


@contextmanager
def throwaway_homeserver(prefix: str) -> Iterator[tuple[Path, SynapseServer]]:
    """(a temporary work directory, a started local Synapse with relaxed limits in it); both gone after."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        homeserver = LocalHomeserver(work / "synapse", relaxed_rate_limits=True)
        homeserver.start()
        try:
            yield work, SynapseServer(homeserver)
        finally:
            homeserver.stop()


@contextmanager
def throwaway_postgres() -> Iterator[LocalPostgres]:
    """A started local PostgreSQL (the machine's binaries) on PostgreSQL's own defaults, durable
    commits included (unlike the tests' server); removed after."""
    server = LocalPostgres(settings={})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def postgres_version(server: LocalPostgres) -> str:
    return subprocess.run([str(server.binaries / "postgres"), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def machine() -> str:
    """CPU model, cores, Python and kernel, as recorded beside every figure in bench/RESULTS.md."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or platform.machine())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A process's resident memory now (VmRSS) or at its peak so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} in /proc/{pid}/status")


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and everything under it: the live descendants' own, and
    that of the children each has reaped (a server's finished connections, say)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            parents.setdefault(parent, []).append(int(entry.name))
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
        pending += parents.get(current, [])
    return total
