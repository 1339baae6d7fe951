"""The row work's two engines behind one small interface: define a relation, materialise a summary.

`LocalRows` runs the summary queries in the project's DuckDB (over its own tables or an attached log's files).
`SparkRows` runs the same queries, transpiled from DuckDB's dialect by SQLGlot, on Apache Spark (local mode, a
`spark://` master or Spark Connect `sc://`): the rows stay where Spark reads them and only the summary comes
back, as Arrow, into a temp table of the project's DuckDB cursor, where the rest of the analysis reads it.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from app.core.engine.attach import NO_LABELS_SQL, AttachedLog, base_view_sql, labels_view_sql
from app.core.errors import Cancelled, LineproofError, SettingsError
from app.core.progress import NullProgress, Progress
from app.core.store.db import one
from app.core.store.manifest import MANIFEST_NAME
from app.core.store.sources import sql_literal

ENGINES = ("duckdb", "spark")
QUIET_LOG4J = Path(__file__).with_name("log4j2-quiet.properties")
_PARAM = re.compile(r"\$([A-Za-z_]\w*)")


class EngineError(LineproofError):
    """The engine cannot run the row work (not installed, unreachable, or refused the query)."""


@dataclass(frozen=True)
class EngineSettings:
    """[engine] in lineproof.toml: name = duckdb | spark; master (local[*], spark://host:7077) or connect
    (sc://host:15002, Spark Connect)."""

    name: str = "duckdb"
    master: str = "local[2]"
    connect: str = ""

    @classmethod
    def from_manifest(cls, extra: dict, override: str | None = None) -> EngineSettings:
        """The project's [engine] table, every key and value checked; `override` (--engine) picks the name."""
        data = extra.get("engine", {}) if isinstance(extra, dict) else {}
        where = f"{MANIFEST_NAME} [engine]"
        if not isinstance(data, dict):
            raise SettingsError(f"{where} is not a table.", "Write [engine] on its own line, then key = value lines.")
        unknown = sorted(set(data) - {"name", "master", "connect"})
        if unknown:
            raise SettingsError(f"{where} has unknown key(s): {', '.join(unknown)}.",
                                "Known keys: name, master, connect.")
        for key, value in data.items():
            if not isinstance(value, str):
                raise SettingsError(f"{where} {key} = {value!r} is not text.", f'Write it in quotes: {key} = "..."')
        settings = cls(**data)
        if override:
            settings = cls(override, settings.master, settings.connect)
        if settings.name not in ENGINES:
            raise SettingsError(f"Engine {settings.name!r} is not known.", f"Use one of {', '.join(ENGINES)}.")
        if settings.connect and not settings.connect.startswith("sc://"):
            raise SettingsError(f"{where} connect = {settings.connect!r} is not a Spark Connect URL.",
                                'Write it as connect = "sc://host:15002".')
        if not settings.connect and not re.fullmatch(r"local(\[(\*|\d+)\])?|spark://[\w.-]+(:\d+)?(,[\w.-]+(:\d+)?)*",
                                                     settings.master):
            raise SettingsError(f"{where} master = {settings.master!r} is not a Spark master.",
                                'Use "local[2]", "local[*]" or "spark://host:7077" (or connect = "sc://host:15002").')
        return settings


def inline(sql: str, params: dict[str, Any]) -> str:
    """`$name` parameters written into the SQL as literals (Spark SQL takes no DuckDB-style parameters)."""
    def literal(match: re.Match) -> str:
        value = params[match.group(1)]
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, (int, float)):
            return repr(value)  # a float's shortest round-trip text
        if isinstance(value, datetime):
            return f"TIMESTAMP {sql_literal(value.isoformat(sep=' '))}"
        if isinstance(value, date):
            return f"DATE {sql_literal(value.isoformat())}"
        return sql_literal(str(value))
    return _PARAM.sub(literal, sql)


def to_spark(sql: str) -> str:
    """DuckDB SQL in Spark's dialect; functions SQLGlot leaves alone are renamed to their Spark equivalent."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    renames = {"epoch_us": "UNIX_MICROS"}
    for node in list(tree.find_all(exp.Anonymous)):
        name = str(node.name).lower()
        if name in renames:
            node.replace(exp.Anonymous(this=renames[name], expressions=node.expressions))
        elif name == "isfinite":  # Spark has isnan but no isfinite; NULL stays NULL as in DuckDB
            finite = sqlglot.parse_one("NOT ISNAN(_v) AND ABS(_v) <> CAST('Infinity' AS DOUBLE)", read="spark")
            for column in list(finite.find_all(exp.Column)):
                column.replace(node.expressions[0].copy())
            node.replace(exp.Paren(this=finite))
    return tree.sql(dialect="spark")


class LocalRows:
    """DuckDB, in the project's own cursor."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def define(self, name: str, sql: str) -> None:
        """A relation the summary queries read (a temp view)."""
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")

    def materialise(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None:
        """Run a summary query into a temp table of the cursor."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}", params or {})

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> tuple:
        """One row of a small query."""
        return one(self.con, sql, params or {})

    def close(self) -> None:
        """Nothing to release: the cursor belongs to the caller."""


_SESSION: dict[tuple[str, str], Any] = {}  # at most one: (master, connect) -> session
_SESSION_LOCK = threading.Lock()


def spark_session(settings: EngineSettings) -> Any:
    """One Spark session per master or Connect URL for this process (starting one takes seconds)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise EngineError("Apache Spark is not installed on this PC.",
                          "Install the extra: pip install 'lineproof[spark]' (it needs Java 17: "
                          "apt-get install -y openjdk-17-jre-headless), or use --engine duckdb.") from exc
    _check_reachable(settings)
    key = (settings.master, settings.connect)
    with _SESSION_LOCK:
        if key in _SESSION:
            return _SESSION[key]
        # One Spark session per process: a changed [engine] (another master, or Connect instead of a local
        # session) ends the previous one first.
        for old in _SESSION.values():
            try:
                old.stop()
            except Exception:  # already gone with its JVM or server
                pass
        _SESSION.clear()
        try:
            if settings.connect:
                builder = SparkSession.builder.remote(settings.connect)
            else:
                builder = (SparkSession.builder.master(settings.master).appName("lineproof")
                           .config("spark.ui.enabled", "false")
                           .config("spark.ui.showConsoleProgress", "false")
                           .config("spark.sql.session.timeZone", "UTC")
                           .config("spark.network.timeout", "60s")
                           .config("spark.sql.ansi.enabled", "false")
                           .config("spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile={QUIET_LOG4J}"))
            if not settings.connect and settings.master.startswith("local"):  # executors in this process: loopback
                builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress",
                                                                                   "127.0.0.1")
            session = builder.getOrCreate()
            if settings.connect:
                session.conf.set("spark.sql.session.timeZone", "UTC")
            else:
                session.sparkContext.setLogLevel("FATAL")
        except Exception as exc:  # py4j, gRPC and Java errors have no common base
            where = settings.connect or settings.master
            raise EngineError(f"Spark at {where} cannot be started or reached ({_first_line(exc)}).",
                              "Check the master or Connect URL in lineproof.toml [engine] and that the cluster "
                              "is up (and Java 17 for local mode); nothing was computed.") from exc
        _SESSION[key] = session
        return session


def _check_reachable(settings: EngineSettings, timeout_s: float = 5.0) -> None:
    """A cluster that does not answer is named at once (Spark's own client retries for about a minute)."""
    url = settings.connect or settings.master
    if url.startswith("local"):
        return
    default = 15002 if settings.connect else 7077
    unreachable = []
    for host_port in url.split("://", 1)[1].split("/")[0].split(";")[0].split(","):
        host, _, port = host_port.partition(":")
        try:
            socket.create_connection((host, int(port or default)), timeout=timeout_s).close()
            return
        except (OSError, ValueError) as exc:
            unreachable.append(f"{host}:{port or default} ({exc.__class__.__name__})")
    raise EngineError(f"Spark at {url} cannot be reached: {', '.join(unreachable)}.",
                      "Check the master or Connect URL in lineproof.toml [engine], the network and that the cluster "
                      "is up; nothing was computed.")


def _naive_utc(table: Any) -> Any:
    """Spark hands timestamps over as UTC-zoned Arrow; the project's columns are naive UTC (same instants)."""
    import pyarrow as pa

    fields = [pa.field(f.name, pa.timestamp(f.type.unit)) if pa.types.is_timestamp(f.type) and f.type.tz else f
              for f in table.schema]
    return table.cast(pa.schema(fields)) if fields != list(table.schema) else table


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


class SparkRows:
    """Apache Spark: the attached log's files read where Spark runs, summaries back as Arrow."""

    name = "spark"

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: EngineSettings, log: AttachedLog,
                 progress: Progress | None = None) -> None:
        self.con, self.settings, self.log = con, settings, log
        self.progress = progress or NullProgress()
        self.spark = spark_session(settings)
        self.tag = f"lineproof-{id(self)}"
        self._active = False  # an action is running on Spark
        if hasattr(self.progress, "on_cancel"):
            self.progress.on_cancel(self._interrupt)
        self._read_files()

    def _interrupt(self) -> None:
        """Cancel pressed: stop this summary's Spark jobs (the job group, or the Connect tag), again every half
        second while the action runs: a job the query plans after the first cancel would otherwise run on."""
        def keep_cancelling() -> None:
            while True:
                try:
                    if self.settings.connect:
                        self.spark.interruptTag(self.tag)
                    else:
                        self.spark.sparkContext.cancelJobGroup(self.tag)
                except Exception:  # the session may already be gone; the query then fails by itself
                    return
                time.sleep(0.5)
                if not self._active:
                    return
        threading.Thread(target=keep_cancelling, daemon=True, name="spark-cancel").start()

    def _run(self, action):
        if self.progress.cancelled():  # pressed before this job started: cancelling the group would miss it
            raise Cancelled()
        if self.settings.connect:
            self.spark.addTag(self.tag)
        else:
            self.spark.sparkContext.setJobGroup(self.tag, "lineproof summary", interruptOnCancel=True)
        self._active = True
        try:
            return action()
        except Exception as exc:
            if self.progress.cancelled():
                raise Cancelled() from exc
            raise EngineError(f"Spark refused the summary for {self.log.name!r} ({_first_line(exc)}).",
                              "A file's schema may differ from the others, or a file may be gone; check the "
                              "log again (attach-log --recheck). Nothing was stored.") from exc
        finally:
            self._active = False
            if self.settings.connect:
                self.spark.removeTag(self.tag)

    def _read_files(self) -> None:
        def read():
            reader = self.spark.read
            if self.log.format != "iceberg":  # partition folders are columns; Iceberg's files carry them already
                reader = reader.option("basePath", self.log.root)
            reader.parquet(*[f.path for f in self.log.files]).createOrReplaceTempView("_log_raw")
            self.spark.sql(to_spark(base_view_sql(self.log))).createOrReplaceTempView("_log")
            if self.log.label_files:
                self.spark.read.parquet(*[f.path for f in self.log.label_files]).createOrReplaceTempView("_labels_raw")
                self.spark.sql(to_spark(labels_view_sql())).createOrReplaceTempView("_labels")
            else:
                self.spark.sql(to_spark(NO_LABELS_SQL)).createOrReplaceTempView("_labels")
        self._run(read)

    def define(self, name: str, sql: str) -> None:
        """A relation the summary queries read (a Spark temp view)."""
        self._run(lambda: self.spark.sql(to_spark(sql)).createOrReplaceTempView(name))

    def _arrow(self, sql: str, params: dict[str, Any] | None) -> Any:
        """A summary query's result from Spark as Arrow, timestamps as naive UTC. Not collect(): that turns
        timestamps into this PC's local time."""
        return _naive_utc(self._run(lambda: self.spark.sql(to_spark(inline(sql, params or {}))).toArrow()))

    def materialise(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None:
        """Run a summary query on Spark; its (small) result becomes a temp table of the DuckDB cursor."""
        self.con.register("_spark_result", self._arrow(sql, params))
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _spark_result")
        finally:
            self.con.unregister("_spark_result")

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> tuple:
        """One row of a small query, computed on Spark."""
        rows = self._arrow(sql, params).to_pylist()
        return tuple(rows[0].values()) if rows else None

    def close(self) -> None:
        """Stop listening for Cancel (the session stays for the next query)."""
        if hasattr(self.progress, "off_cancel"):
            self.progress.off_cancel(self._interrupt)
