"""Opening the PostgreSQL-backed Dagster instance, failing with a clear error when it is down.

Left to itself, Dagster retries a refused connection for about fifteen seconds and then reports
``too many retries for DB connection`` under a stack of SQLAlchemy and psycopg2 frames, naming
neither the host nor the port. ``open_instance`` checks the server first, with the connection
values the instance's own ``dagster.yaml`` resolves to, and says where it could not connect.

``python -m deploy.instance check [--create-database]`` runs the same check from the
command line (``make dev-postgres`` calls it before ``dagster dev``).
``python -m deploy.instance in-process SOURCE TARGET`` writes the deployment's ``dagster.yaml``
with the DefaultRunLauncher instead of the DockerRunLauncher, for an instance whose runs are
children of a local code server (``make dev-postgres``, the local-process topology tests).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]
from psycopg2 import sql
from psycopg2.extensions import connection as Connection  # type: ignore[import-untyped]

CONNECT_TIMEOUT_SECONDS = 5
"""How long a connection attempt may take before the server counts as unreachable."""
MAINTENANCE_DATABASE = "postgres"
"""The database to connect to when creating the instance's database."""


class InstanceConfigError(ValueError):
    """``dagster.yaml`` is missing, has no ``storage: postgres: postgres_db:`` block, or names an
    environment variable that is not set."""


class PostgresUnavailableError(ConnectionError):
    """The PostgreSQL server of the instance cannot be reached or refuses the connection."""


@dataclass(frozen=True)
class PostgresSettings:
    """Where the instance's PostgreSQL is, as ``dagster.yaml`` resolves it.

    Attributes:
        host: The server's host name or address.
        port: The server's TCP port.
        user: The role to connect as.
        password: The role's password; empty for trust or peer authentication.
        database: The database holding the instance's runs, event logs and schedules.
    """

    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def address(self) -> str:
        """``host:port``, the way errors name the server."""
        return f"{self.host}:{self.port}"

    def connect(self, *, database: str | None = None) -> Connection:
        """A psycopg2 connection to ``database`` (the instance's database by default).

        Raises:
            PostgresUnavailableError: The server is down, unreachable, refuses the role or the
                password, or has no such database; the message names host, port and database.
        """
        dbname = database or self.database
        try:
            return psycopg2.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=dbname,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
            )
        except psycopg2.OperationalError as error:
            raise PostgresUnavailableError(
                f"cannot connect to PostgreSQL at {self.address} (database {dbname!r}, user "
                f"{self.user!r}): {_reason(error)}"
            ) from None


def _reason(error: Exception) -> str:
    """The driver's message without its boilerplate: ``Connection refused``,
    ``database "x" does not exist``, ``password authentication failed for user "y"``."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    first = re.sub(r"^connection to server .*? failed: ", "", lines[0])
    return re.sub(r"^FATAL:\s+", "", first)


def _resolve(value: object, environ: Mapping[str, str], field: str) -> str:
    """A ``dagster.yaml`` value: a literal, or ``{env: NAME}`` read from ``environ``."""
    if isinstance(value, dict) and set(value) == {"env"}:
        name = str(value["env"])
        if name not in environ:
            raise InstanceConfigError(
                f"dagster.yaml reads the PostgreSQL {field} from ${name}, which is not set"
            )
        return environ[name]
    return str(value)


def postgres_settings(
    dagster_home: Path, *, environ: Mapping[str, str] | None = None
) -> PostgresSettings:
    """The PostgreSQL connection values of the instance whose ``dagster.yaml`` is in
    ``dagster_home``, with ``{env: ...}`` values read from ``environ`` (``os.environ`` by default).

    Example:
        >>> postgres_settings(Path(os.environ["DAGSTER_HOME"])).address
        '127.0.0.1:5432'

    Raises:
        InstanceConfigError: No ``dagster.yaml``, no ``postgres_db`` block, or an unset variable.
    """
    environ = os.environ if environ is None else environ
    path = dagster_home / "dagster.yaml"
    if not path.is_file():
        raise InstanceConfigError(f"no dagster.yaml in DAGSTER_HOME {dagster_home}")
    config = yaml.safe_load(path.read_text()) or {}
    db = (config.get("storage") or {}).get("postgres", {}).get("postgres_db")
    if not isinstance(db, dict):
        raise InstanceConfigError(f"{path} has no `storage: postgres: postgres_db:` block")
    return PostgresSettings(
        host=_resolve(db["hostname"], environ, "hostname"),
        port=int(_resolve(db.get("port", 5432), environ, "port")),
        user=_resolve(db["username"], environ, "username"),
        password=_resolve(db.get("password", ""), environ, "password"),
        database=_resolve(db["db_name"], environ, "db_name"),
    )


def check_postgres(settings: PostgresSettings) -> None:
    """Connects to the instance's database once and closes the connection.

    Raises:
        PostgresUnavailableError: See ``PostgresSettings.connect``.
    """
    settings.connect().close()


def create_database(settings: PostgresSettings) -> bool:
    """Creates the instance's database when it does not exist yet.

    Returns:
        Whether the database was created.

    Raises:
        PostgresUnavailableError: The server is unreachable (see ``PostgresSettings.connect``).
    """
    connection = settings.connect(database=MAINTENANCE_DATABASE)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.database,))
            if cursor.fetchone() is not None:
                return False
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.database)))
            return True
    finally:
        connection.close()


def dagster_home() -> Path:
    """``$DAGSTER_HOME``.

    Raises:
        InstanceConfigError: ``DAGSTER_HOME`` is not set.
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise InstanceConfigError("DAGSTER_HOME is not set; it must hold the dagster.yaml to use")
    return Path(home)


def open_instance(home: Path | None = None) -> dg.DagsterInstance:
    """The Dagster instance of ``home`` (``$DAGSTER_HOME`` by default), after checking that its
    PostgreSQL answers.

    Example:
        >>> with open_instance() as instance:
        ...     instance.get_runs(limit=1)

    Raises:
        InstanceConfigError: See ``postgres_settings``.
        PostgresUnavailableError: The server cannot be reached; names host and port.
    """
    home = dagster_home() if home is None else home
    check_postgres(postgres_settings(home))
    return dg.DagsterInstance.from_config(str(home))


IN_PROCESS_RUN_LAUNCHER = {"module": "dagster", "class": "DefaultRunLauncher"}
"""Runs as children of the code server: Dagster's default, no Docker engine needed."""


def write_in_process_instance(source: Path, target: Path) -> None:
    """``source`` (an instance's ``dagster.yaml``) written to ``target`` with every run launched
    in the code server's process tree; all other settings kept."""
    config = yaml.safe_load(source.read_text())
    config["run_launcher"] = IN_PROCESS_RUN_LAUNCHER
    target.write_text(
        f"# {source.name} with the in-process run launcher (python -m deploy.instance in-process)\n"
        + yaml.safe_dump(config, sort_keys=False)
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.instance check [--create-database]``; exit status 1 and one
    line on stderr when the instance's PostgreSQL cannot be used. ``in-process SOURCE TARGET``:
    see :func:`write_in_process_instance`."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["in-process"]:
        copy = argparse.ArgumentParser(prog="python -m deploy.instance in-process")
        copy.add_argument("source", type=Path)
        copy.add_argument("target", type=Path)
        paths = copy.parse_args(arguments[1:])
        write_in_process_instance(paths.source, paths.target)
        return 0
    parser = argparse.ArgumentParser(description="Check the Dagster instance's PostgreSQL.")
    parser.add_argument("command", choices=["check"])
    parser.add_argument(
        "--create-database", action="store_true", help="create the database when it is missing"
    )
    args = parser.parse_args(arguments)
    try:
        settings = postgres_settings(dagster_home())
        if args.create_database and create_database(settings):
            print(f"created database {settings.database!r} at {settings.address}")
        check_postgres(settings)
    except (InstanceConfigError, PostgresUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"PostgreSQL at {settings.address} (database {settings.database!r}) is ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
