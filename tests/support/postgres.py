"""A throwaway PostgreSQL server for the tests, started from the machine's own binaries.

Like the Synapse fixtures, the server is a child process in a temporary directory: `initdb`,
then `postgres` on a free port on 127.0.0.1 (its unix socket in that directory), torn down (and
the directory removed) when the session ends. The binaries are Debian's
(`/usr/lib/postgresql/<version>/bin`, the `postgresql` package), or whatever `postgres` and
`initdb` are on PATH, or those in the directory RPBOT_POSTGRES_BINDIR names.

`initdb` refuses to run as root, so under root the server runs as the `postgres` account in a
directory it owns (`runuser -u postgres --`), made directly in the system's temporary directory
(pytest's own are private to root). Apart from the listener, it runs on PostgreSQL's
defaults except `fsync`, `synchronous_commit` and `full_page_writes` (off: a throwaway server
need not survive a power cut, and tests run faster); benchmarks start their own with the defaults.

Each test gets a database of its own, copied from a template (`CREATE DATABASE ... TEMPLATE`),
which takes a few milliseconds. Where PostgreSQL is not installed, every test that needs it is
skipped with the reason, and the run's summary ends with one line saying so; `.ci/run` installs
the package so that CI always runs them (it sets RPBOT_REQUIRE_POSTGRES=1, which turns a missing
server into a failure).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import pq

SUPERUSER = "rpbot"
MISSING = (
    "PostgreSQL is not installed here (no postgres/initdb under /usr/lib/postgresql/*/bin or on PATH): "
    "the PostgreSQL runs of the engine and store tests were skipped. Install it with `apt-get install postgresql`."
)
_missing_reported: list[str] = []


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries on this machine."""


def find_binaries() -> Path | None:
    """The directory holding `postgres` and `initdb` (the newest Debian version first), or None.
    RPBOT_POSTGRES_BINDIR names the directory instead (and only it is looked in)."""
    chosen = os.environ.get("RPBOT_POSTGRES_BINDIR")
    if chosen is not None:
        return Path(chosen) if all((Path(chosen) / name).exists() for name in ("postgres", "initdb", "pg_ctl")) else None
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: _version(p.parent.parent.name))
    for candidate in reversed(debian):
        if (candidate.parent / "initdb").exists():
            return candidate.parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class _RunAs:
    """Runs the server's commands as the `postgres` account when we are root (initdb refuses root)."""

    user: str | None

    def command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def own(self, path: Path) -> None:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)


class LocalPostgres:
    """One PostgreSQL server in `directory`: `start()`, `url(database)`, `create_database()`, `stop()`."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        binaries = find_binaries()
        if binaries is None:
            raise PostgresUnavailable(MISSING)
        self.binaries = binaries
        self.directory = Path(tempfile.mkdtemp(prefix="rpbot-postgres-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self.settings = settings if settings is not None else {
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
        }
        self.run_as = _RunAs("postgres" if os.geteuid() == 0 else None)
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.run_as.own(self.directory)
        subprocess.run(
            self.run_as.command(str(self.binaries / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
                                "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"),
            check=True, capture_output=True,
        )
        options = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.directory}"]
        for key, value in self.settings.items():
            options += ["-c", f"{key}={value}"]
        log = (self.directory / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            self.run_as.command(str(self.binaries / "postgres"), "-D", str(self.data), "-p", str(self.port), *options),
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_until_ready()

    def _wait_until_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self.log_tail()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections in {timeout_s:.0f} s: {self.log_tail()}") from None
                time.sleep(0.05)

    def log_tail(self) -> str:
        log = self.directory / "postgres.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement outside any transaction (CREATE / DROP DATABASE need that)."""
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, *, template: str | None = None, prefix: str = "test") -> str:
        """A new, empty database (or a copy of `template`); returns its name."""
        name = f"{prefix}_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self.process is not None:
            # A "fast" shutdown: clients are disconnected, the server exits cleanly (pg_ctl signals
            # the postmaster itself; under root, `runuser` would not pass a signal on).
            subprocess.run(self.run_as.command(str(self.binaries / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"),
                           capture_output=True, check=False)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class RoundTrips:
    """Round trips to the server counted by `counting_round_trips` (read `count` after the block)."""

    traces: list[Path] = field(default_factory=list)
    count: int = 0


@contextmanager
def counting_round_trips(*connections: object) -> Iterator[RoundTrips]:
    """Count the round trips these connections (`core.storage`'s PostgreSQL ones) make to the server
    inside the block: libpq's own protocol trace, one ReadyForQuery from the server ending each."""
    counted = RoundTrips()
    with tempfile.TemporaryDirectory(prefix="rpbot-trace-") as tmp, ExitStack() as tracing:
        for number, connection in enumerate(connections):
            pgconn = connection.conn.pgconn  # type: ignore[attr-defined]
            trace = Path(tmp) / f"{number}.trace"
            traced = tracing.enter_context(trace.open("w"))
            pgconn.trace(traced.fileno())
            pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            tracing.callback(pgconn.untrace)
            counted.traces.append(trace)
        yield counted
        tracing.close()
        counted.count = sum(trace.read_text().count("\tReadyForQuery\t") for trace in counted.traces)


def postgres_or_skip() -> LocalPostgres:
    """A started server, or the test skipped with the reason (a failure under RPBOT_REQUIRE_POSTGRES=1)."""
    try:
        server = LocalPostgres()
    except PostgresUnavailable as missing:
        if os.environ.get("RPBOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(str(missing))
        if not _missing_reported:
            _missing_reported.append(str(missing))
        pytest.skip(str(missing))
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """The session's PostgreSQL server (started on first use)."""
    server = postgres_or_skip()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> Iterator[str]:
    """The URL of a new, empty database for this test (dropped afterwards)."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _missing_reported:
        terminalreporter.write_line(line, yellow=True, bold=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's database lives, once per backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "test.sqlite3")
    return request.getfixturevalue("postgres_url")


BOT_BACKEND_VARIABLE = "RPBOT_BOT_BACKEND"


@pytest.fixture
def bot_database_url(request: pytest.FixtureRequest) -> str:
    """The `[storage] database_url` of the bot processes a real-Synapse test starts: "" (SQLite files
    in their data_dir), or a new PostgreSQL database shared by every bot of the test. PostgreSQL for
    a test marked `on_both_backends` in its `[postgresql]` run, and for every test when the run
    sets RPBOT_BOT_BACKEND=postgresql, but those marked `sqlite_files` (they read the files)."""
    backend = getattr(request, "param", None) or os.environ.get(BOT_BACKEND_VARIABLE, "sqlite")
    if backend == "sqlite" or request.node.get_closest_marker("sqlite_files") is not None:
        return ""
    return str(request.getfixturevalue("postgres_url"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (
        "bot_database_url" in metafunc.fixturenames
        and metafunc.definition.get_closest_marker("on_both_backends") is not None
        and os.environ.get(BOT_BACKEND_VARIABLE) is None
    ):
        metafunc.parametrize("bot_database_url", ["sqlite", "postgresql"], indirect=True)


class EngineDatabases:
    """Engine databases at the latest schema, for tests: a test takes clean ones and gives them
    back emptied (TRUNCATE ... RESTART IDENTITY, a few milliseconds), where making and dropping a
    database would cost a tenth of a second each. New ones are copies of a migrated template."""

    def __init__(self, server: LocalPostgres) -> None:
        self.server = server
        self.template: str | None = None
        self.free: list[str] = []

    def take(self) -> str:
        if self.free:
            return self.server.url(self.free.pop())
        if self.template is None:
            template = self.server.create_database(prefix="engine_template")
            _in_a_thread(_migrate, self.server.url(template))
            self.template = template
        return self.server.url(self.server.create_database(template=self.template, prefix="engine"))

    def give_back(self, url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [row[0] for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename != 'schema_versions'")]
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                         " AND pid != pg_backend_pid()")
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        self.free.append(url.rsplit("/", 1)[1])


def _migrate(url: str) -> None:
    from core.eventlog import open_database

    async def migrate() -> None:
        db = await open_database(url)
        await db.close()

    asyncio.run(migrate())


def _in_a_thread(function: Callable[..., object], *args: object) -> None:
    """Run `function` in a thread of its own (it may run an event loop; the test's may be running)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(function, *args).result()


@pytest.fixture(scope="session")
def engine_databases(postgres_server: LocalPostgres) -> EngineDatabases:
    return EngineDatabases(postgres_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """`engine_location(name)`: where a new engine database of this test lives, once per backend
    (a SQLite file named `name`, or a clean PostgreSQL database at the latest schema)."""
    if request.param == "sqlite":
        yield lambda name: str(tmp_path / name)
        return
    pool: EngineDatabases = request.getfixturevalue("engine_databases")
    taken: list[str] = []

    def take(name: str) -> str:
        taken.append(pool.take())
        return taken[-1]

    yield take
    for url in taken:
        pool.give_back(url)
