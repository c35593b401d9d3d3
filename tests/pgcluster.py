"""A throwaway PostgreSQL cluster for tests and benches: Debian's server binaries, a temp dir, loopback.

`initdb -A trust` in a fresh temp dir, `pg_ctl start` on 127.0.0.1 and a free port (its Unix socket
in the same dir), run as the `postgres` user through `runuser` when we are root (the server refuses
to run as root), as ourselves otherwise. Starts in under a second; `stop(mode="immediate")` and
`start()` again is how a test takes the database away mid-operation. `close()` stops it and removes
the dir; scripts/setup installs the `postgresql` package where it is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: The database the tests use, and the role `initdb -U` creates (trust auth: no password is checked).
DATABASE = "fleet_test"
ROLE = "fleet"


def bindir() -> Path | None:
    """Where initdb and pg_ctl are: `pg_config --bindir` if it has them, else the newest Debian one."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "pg_ctl").exists():
            return Path(out.stdout.strip())
    except OSError:
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One cluster: `url(...)` to reach it, `stop`/`start` to take it away and bring it back."""

    def __init__(self) -> None:
        bin_dir = bindir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL's server binaries are missing: run scripts/setup (installs `postgresql`).")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="fleet-pg-", dir="/tmp"))
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o700)
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", ROLE, "--no-sync", "-E", "UTF8")
        self.start()
        self.psql(f"CREATE DATABASE {DATABASE}", database="postgres")

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=60, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr or proc.stdout}")

    def start(self) -> None:
        options = (f"-k {self.root} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off "
                   "-c max_connections=100")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-o", options, "-l", str(self.root / "log"), "-w",
                  "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        proc = subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "status"],
                              capture_output=True, timeout=30, check=False)
        return proc.returncode == 0

    def url(self, database: str = DATABASE, password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{ROLE}{secret}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = DATABASE) -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # test-made statements only

    def close(self) -> None:
        try:
            if self.running():
                self.stop("fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
