"""A fresh, uniquely named PostgreSQL database per test, and a DAGSTER_HOME that points the
project's own ``dagster.yaml`` at it through the environment variables that file reads."""

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
from psycopg2 import sql

from deploy.instance import write_in_process_instance

PROJECT_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"


def _admin_connection():
    connection = psycopg2.connect(
        host=HOST, port=PORT, user=USER, dbname="postgres", connect_timeout=5
    )
    connection.autocommit = True
    return connection


def unique_database_name(prefix: str = "upsert_pipeline_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_database(name: str) -> None:
    """Drops ``name`` if it exists, closing any connection a test left open to it."""
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        connection.close()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Creates a database nobody else uses, yields its name, and drops it at the end."""
    name = unique_database_name()
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()
    try:
        yield name
    finally:
        drop_database(name)


def database_exists(name: str) -> bool:
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cursor.fetchone() is not None
    finally:
        connection.close()


def query(database: str, statement: str, parameters: tuple[object, ...] = ()) -> list[tuple]:
    """Rows of one statement run directly against ``database`` (not through Dagster)."""
    connection = psycopg2.connect(host=HOST, port=PORT, user=USER, dbname=database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, parameters)
            return cursor.fetchall()
    finally:
        connection.close()


def postgres_env(database: str, *, port: int = PORT) -> dict[str, str]:
    """The variables ``dagster.yaml`` reads its connection values from."""
    return {
        "DAGSTER_POSTGRES_HOST": HOST,
        "DAGSTER_POSTGRES_PORT": str(port),
        "DAGSTER_POSTGRES_USER": USER,
        "DAGSTER_POSTGRES_PASSWORD": "",
        "DAGSTER_POSTGRES_DB": database,
    }


def project_dagster_home(path: Path) -> Path:
    """A DAGSTER_HOME holding the project's ``dagster.yaml`` (with the in-process run launcher
    the README's "switch back" gives: these tests run the services as local processes) and a
    copy of its ``workspace.yaml``."""
    path.mkdir(parents=True, exist_ok=True)
    write_in_process_instance(PROJECT_DIR / "dagster.yaml", path / "dagster.yaml")
    shutil.copy(PROJECT_DIR / "workspace.yaml", path / "workspace.yaml")
    return path
