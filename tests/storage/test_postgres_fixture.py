"""Where PostgreSQL is not installed, a run says so plainly: its tests are skipped with the reason
and the summary has a line of its own saying what to install; under RPBOT_REQUIRE_POSTGRES=1 (CI) the
run fails instead."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.bot_process import REPO_ROOT
from tests.support.postgres import MISSING

A_POSTGRES_TEST = "tests/storage/test_seam.py::test_postgres_reads_back_what_sqlite_does"


def run_pytest(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    """One PostgreSQL test in a pytest of its own, on a machine without PostgreSQL; the run around it
    (CI sets RPBOT_REQUIRE_POSTGRES=1, xdist names its workers) does not reach it unless given in `env`."""
    inherited = {name: value for name, value in os.environ.items()
                 if name != "RPBOT_REQUIRE_POSTGRES" and not name.startswith("PYTEST_XDIST")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", A_POSTGRES_TEST, "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**inherited, "RPBOT_POSTGRES_BINDIR": str(tmp_path / "no-postgres-here"), **env},
    )


def test_a_machine_without_postgres_skips_its_tests_and_says_so(tmp_path):
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert MISSING in result.stdout.splitlines() and "apt-get install postgresql" in MISSING  # a line of its own


def test_ci_fails_when_postgres_is_missing(tmp_path):
    result = run_pytest(tmp_path, RPBOT_REQUIRE_POSTGRES="1")
    assert result.returncode != 0 and "1 error" in result.stdout + result.stderr, result.stdout
