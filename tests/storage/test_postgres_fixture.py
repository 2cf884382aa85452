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
    return subprocess.run(
        [sys.executable, "-m", "pytest", A_POSTGRES_TEST, "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "RPBOT_POSTGRES_BINDIR": str(tmp_path / "no-postgres-here"), **env},
    )


def test_a_machine_without_postgres_skips_its_tests_and_says_so(tmp_path):
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert MISSING in result.stdout.splitlines() and "apt-get install postgresql" in MISSING  # a line of its own


def test_ci_fails_when_postgres_is_missing(tmp_path):
    result = run_pytest(tmp_path, RPBOT_REQUIRE_POSTGRES="1")
    assert result.returncode != 0 and "1 error" in result.stdout + result.stderr, result.stdout
