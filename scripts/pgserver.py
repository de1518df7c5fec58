"""A throw-away PostgreSQL server on loopback for the harness scripts (chaos, benchmarks).

Started through scripts/test-postgres.sh, on a port and directory of its own, so a harness
never touches the tests' server or another harness's one. Debian's `postgresql` package
(make deps installs it) provides the binaries.
"""
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PostgresServer:
    def __init__(self, name, port, failure=RuntimeError):
        """Starts the server for harness `name` on `port`; raises `failure` if it does not start."""
        # Outside any private work folder: the server runs as the postgres user.
        directory = os.path.join(tempfile.gettempdir(), "fulfillment-%s-pg-%d" % (name, os.getpid()))
        self.env = dict(os.environ, PGTEST_DIR=directory, PGTEST_PORT=str(port))
        self.script = os.path.join(ROOT, "scripts", "test-postgres.sh")
        self.failure = failure
        started = subprocess.run([self.script, "start"], capture_output=True, env=self.env, timeout=120)
        if started.returncode != 0:
            raise failure("PostgreSQL did not start (make deps installs it): %s" % started.stderr.decode()[-1000:])
        self.url = started.stdout.decode().strip()
        self.server = self.url.rsplit("/", 1)[0]

    def restart(self, down_seconds):
        """An immediate stop (as a crash leaves it), `down_seconds` down, and a start."""
        env = dict(self.env, PGTEST_DOWN_SECONDS=str(down_seconds))
        done = subprocess.run([self.script, "restart"], capture_output=True, env=env, timeout=120)
        if done.returncode != 0:
            raise self.failure("PostgreSQL did not come back: %s" % done.stderr.decode()[-1000:])

    def fresh_database(self, name):
        """The URL of database `name`, dropped and created again."""
        for sql in ("DROP DATABASE IF EXISTS %s" % name, "CREATE DATABASE %s" % name):
            subprocess.run(["psql", self.server + "/postgres", "-qc", sql], check=True, capture_output=True, timeout=60)
        return "%s/%s" % (self.server, name)

    def scalar(self, sql, url=None):
        """One whole number from `sql` (in the server's first database unless `url`), -1 if it fails."""
        done = subprocess.run(["psql", url or self.url, "-tAc", sql], capture_output=True, timeout=30)
        text = done.stdout.decode().strip()
        return int(text) if done.returncode == 0 and text else -1

    def rows(self, sql, url=None):
        """The lines `sql` prints, fields split on `|` ([] if it fails)."""
        done = subprocess.run(["psql", url or self.url, "-tAc", sql], capture_output=True, timeout=30)
        lines = done.stdout.decode().splitlines() if done.returncode == 0 else []
        return [line.split("|") for line in lines if line]

    def stop(self):
        subprocess.run([self.script, "stop"], capture_output=True, env=self.env, timeout=120)
