"""Import prediction logs and delayed ground-truth labels: checked, all-or-nothing, never twice."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from app.core.errors import Cancelled, IngestError
from app.core.progress import NullProgress, Progress, check_cancelled, interrupt_on_cancel
from app.core.store import summary
from app.core.store.db import one
from app.core.store.project import Project, write_memory
from app.core.store.sources import (
    BackgroundDigest,
    SourceFile,
    is_numeric_type,
    literal_path,
    recognise,
    sniff_columns,
    sql_ident,
    sql_literal,
    stage,
    staged_columns,
    unstage,
)

NO_COLUMN = "— none —"  # what the import dialog shows for an unmapped optional role
OPERATOR_NAMES = ("operator_decision", "operator", "final_decision", "operator_verdict")
OPERATOR_COLUMNS = {"operator_decision": "INTEGER", "override_reason": "VARCHAR"}  # added on first use
CORE_COLUMNS = ("record_id", "ts", "version_id", "score", "predicted_label", "import_id")
_STAGE = "_ingest_src"


@dataclass(frozen=True)
class PredictionMapping:
    """Which file column plays which role. Features default to every column not mapped otherwise."""

    record_id: str = "record_id"
    timestamp: str = "ts"
    # Both None: an input-only log (no model runs on it yet); its rows feed drift and data quality, not metrics.
    model_version: str | None = "model_version"
    score: str | None = "score"
    predicted_label: str | None = None
    slices: dict[str, str] = field(default_factory=dict)  # dimension -> file column
    features: tuple[str, ...] | None = None
    # What the score column holds: "probability" (0..1, checked), "logit" (turned into a probability with the
    # logistic function), "value" (a regression output, any finite number). None: value for versions of
    # registered regression/multiclass models, probability for everything else.
    score_kind: str | None = None
    # What the operator finally decided (0 = pass, 1 = defect), where it may differ from the model, and why.
    operator_decision: str | None = None
    override_reason: str | None = None

    @property
    def inputs_only(self) -> bool:
        """True for a log of inputs without a model version or score."""
        return self.model_version is None and self.score is None

    def roles(self) -> dict[str, str]:
        """Role name -> file column, for the required and optional single-column roles."""
        roles = {"record_id": self.record_id, "timestamp": self.timestamp}
        if not self.inputs_only:
            roles.update(model_version=self.model_version, score=self.score)
        if self.predicted_label:
            roles["predicted_label"] = self.predicted_label
        if self.operator_decision:
            roles["operator_decision"] = self.operator_decision
        if self.override_reason:
            roles["override_reason"] = self.override_reason
        return roles


@dataclass(frozen=True)
class LabelMapping:
    """Columns of a label file; `labelled_at` may be absent (the import time is used)."""

    record_id: str = "record_id"
    label: str = "label"
    labelled_at: str | None = "labelled_at"


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    import_id: int
    file_name: str
    file_sha256: str
    rows: int
    new_columns: tuple[str, ...] = ()
    unknown_ids: int = 0
    unknown_examples: tuple[str, ...] = ()
    replaced: int = 0
    older_than_stored: int = 0  # labels not applied: the project holds a newer verdict for the record
    notes: tuple[str, ...] = ()  # what the import decided on the user's behalf (e.g. a daylight-saving choice)


def guess_prediction_mapping(columns: list[str], dimensions: tuple[str, ...]) -> PredictionMapping:
    """A mapping from common column names (case-insensitive); the dialog lets the user correct it."""
    lower = {c.lower(): c for c in columns}

    def pick(*names: str, default: str) -> str:
        return next((lower[n] for n in names if n in lower), default)

    mapping = PredictionMapping(
        record_id=pick("record_id", "id", "part_id", "serial", default="record_id"),
        timestamp=pick("ts", "timestamp", "time", "datetime", "produced_at", default="ts"),
        model_version=pick("model_version", "version_id", "version", "model", default="model_version"),
        score=pick("score", "probability", "proba", "prediction", default="score"),
        predicted_label=next((lower[n] for n in ("predicted_label", "pred_label", "pred", "decision") if n in lower),
                             None),
        slices={d: lower[d.lower()] for d in dimensions if d.lower() in lower},
        operator_decision=next((lower[n] for n in OPERATOR_NAMES if n in lower), None),
        override_reason=next((lower[n] for n in ("override_reason", "reason_code", "override_code") if n in lower),
                             None),
    )
    return mapping


def _first_bad(con: duckdb.DuckDBPyConnection, checks: list[tuple[str, str, str]]) -> tuple[str, int, object] | None:
    """Run (label, column, SQL condition) checks in one scan; return the first failing (label, row, value)."""
    if not checks:
        return None
    parts = []
    for i, (_, column, cond) in enumerate(checks):
        parts.append(f"min(_row) FILTER (WHERE {cond}) AS r{i}")
        parts.append(f"arg_min({sql_ident(column)}::VARCHAR, _row) FILTER (WHERE {cond}) AS v{i}")
    row = one(con, f"SELECT {', '.join(parts)} FROM {_STAGE}")
    failures = [(checks[i][0], row[2 * i], row[2 * i + 1]) for i in range(len(checks)) if row[2 * i] is not None]
    return min(failures, key=lambda f: f[1]) if failures else None


def _row_text(source: SourceFile, row: int) -> str:
    return f"row {row} (line {row + 1} of the file)" if source.format == "csv" else f"row {row}"


def _raise_bad(source: SourceFile, bad: tuple[str, int, object]) -> None:
    label, row, value = bad
    shown = "the field is empty" if value is None or not str(value).strip() else f"value {value!r}"
    raise IngestError(f"{source.path.name}, {_row_text(source, row)}: {label} ({shown}).",
                      "Correct the file and import it again; nothing was imported.")


def _check_columns(source: SourceFile, present: list[str], wanted: dict[str, str]) -> None:
    missing = [f"'{col}' ({role})" for role, col in wanted.items() if col not in present]
    if missing:
        raise IngestError(
            f"{source.path.name} has no column {', '.join(missing)}. Its columns are: {', '.join(present)}.",
            "Map the roles to the file's columns (--map ROLE=COLUMN, or the import dialog); nothing was imported.")


def _check_model_roles(source: SourceFile, present: list[str], m: PredictionMapping) -> None:
    """A score needs the version that made it; a file with neither is offered the input-only import."""
    if (m.model_version is None) != (m.score is None):
        given, missing = ("score", "model version") if m.model_version is None else ("model version", "score")
        raise IngestError(f"{source.path.name}: a {given} column is mapped but no {missing} column.",
                          "Map both (a score belongs to the model version that produced it), or neither to import "
                          "the file as inputs only; nothing was imported.")
    if m.inputs_only and m.operator_decision:
        raise IngestError(f"{source.path.name}: an operator decision ('{m.operator_decision}') is mapped in an "
                          "input-only import, but an override needs the model's decision it overrides.",
                          "Map the model version and score (and its predicted label) as well, or no operator "
                          "decision; nothing was imported.")
    if m.override_reason and not m.operator_decision:
        raise IngestError(f"{source.path.name}: an override reason ('{m.override_reason}') is mapped without the "
                          "operator decision it explains.", "Map the operator decision too (--map "
                          "operator_decision=COLUMN); nothing was imported.")
    if m.inputs_only and m.predicted_label:
        raise IngestError(f"{source.path.name}: a predicted label ('{m.predicted_label}') is mapped in an input-only "
                          "import.", "Map the model version and score as well, or no predicted label; nothing was "
                          "imported.")
    if not m.inputs_only and m.model_version not in present and m.score not in present:
        raise IngestError(
            f"{source.path.name} has no column '{m.model_version}' (model version) and no '{m.score}' (score). "
            f"Its columns are: {', '.join(present)}.",
            "If the file logs a line's inputs without a model, import it as inputs only (--inputs-only, or "
            f"'{NO_COLUMN}' for both in the import dialog) to monitor drift and data quality; otherwise map the "
            "roles (--map model_version=COLUMN --map score=COLUMN); nothing was imported.")


def _check_not_imported(con: duckdb.DuckDBPyConnection, source: SourceFile, sha: str) -> None:
    done = one(con, "SELECT import_id, kind, imported_at FROM imports WHERE file_sha256 = ?", [sha])
    if done:
        raise IngestError(
            f"{source.path.name} was already imported (import #{done[0]}, {done[1]}, {done[2]:%Y-%m-%d %H:%M}); "
            "its content hash matches.", "Nothing was imported twice. Import only new files.")


@dataclass
class FileDigest:
    """An input file's sha256, computed beside the import; asked for once the rows are in, inside the transaction."""

    source: SourceFile
    running: BackgroundDigest
    _checked: str | None = None

    def sha(self, con: duckdb.DuckDBPyConnection) -> str:
        """The hash, after refusing a file whose content was imported before (the transaction then rolls back)."""
        if self._checked is None:
            sha = self.running.result()
            _check_not_imported(con, self.source, sha)
            self._checked = sha
        return self._checked


def _next_import_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(one(con, "SELECT coalesce(max(import_id), 0) + 1 FROM imports")[0])



@contextmanager
def _staged_file(project: Project, path: Path | str, progress: Progress,
                 header_check: Callable[[SourceFile, list[str]], None] | None = None, stage_now: bool = True,
                 sniffer: Callable[[duckdb.DuckDBPyConnection, SourceFile], list[str] | None] = sniff_columns,
                 ) -> Iterator[tuple[duckdb.DuckDBPyConnection, SourceFile, FileDigest]]:
    """Check and stage an input file on a private cursor, hash it meanwhile, expose it as _STAGE.

    `header_check` sees the column names before a row is read, so a mapping typo is answered at once whatever the
    file's size. The hash runs beside the read (FileDigest.sha refuses a re-import when it is first asked for).
    DuckDB errors become IngestError, an interrupt becomes Cancelled; staging is always dropped.
    """
    project.require_writable()
    source = recognise(path)
    con = project.cursor()
    digest: FileDigest | None = None
    try:
        with interrupt_on_cancel(progress, con), write_memory(con):
            header = sniffer(con, source) if header_check is not None else None
            if header is not None:
                header_check(source, header)
            digest = FileDigest(source, BackgroundDigest(source, progress))
            progress.report(0.17, f"Reading {source.path.name}")
            if stage_now:
                stage(con, source, _STAGE)
            check_cancelled(progress)
            yield con, source, digest
    except duckdb.InterruptException as exc:
        raise Cancelled() from exc
    except duckdb.Error as exc:
        raise IngestError(f"{source.path.name} could not be imported: {str(exc).splitlines()[0]}",
                          "Nothing was imported. Check the file against the message.") from exc
    finally:
        if digest is not None:
            digest.running.stop()
        try:
            con.execute("DROP TABLE IF EXISTS _new_labels")
            unstage(con, _STAGE)
        except duckdb.Error:
            pass
        con.close()


def import_predictions(project: Project, path: Path | str, mapping: PredictionMapping | None = None,
                       progress: Progress | None = None) -> ImportResult:
    """Import a prediction log (CSV or Parquet) in one transaction; nothing changes on any error."""
    progress = progress or NullProgress()

    def check_header(source: SourceFile, present: list[str]) -> None:
        _resolve_features(project, source, present, mapping or guess_prediction_mapping(
            present, project.manifest.slice_dimensions))

    csv = recognise(path).format == "csv"
    sniffed: dict[str, str] = {}

    def sniff_typed(con: duckdb.DuckDBPyConnection, source: SourceFile) -> list[str] | None:
        # One sniff serves the header check and the one-pass import's types (a second costs ~0.2 s).
        sniffed.update(_sniff_csv_types(con, source))
        return list(sniffed) if len(sniffed) > 1 else sniff_columns(con, source)

    with _staged_file(project, path, progress, check_header, stage_now=not csv,
                      sniffer=sniff_typed if csv else sniff_columns) as (con, source, digest):
        if csv:
            fast = _fast_csv_import(project, con, source, digest, mapping, progress, sniffed)
            if fast is not None:
                progress.report(1.0, f"Imported {fast.rows:,} rows from {source.path.name}")
                return fast
            progress.report(0.2, f"Reading {source.path.name} row by row for an exact report")
            stage(con, source, _STAGE)
        columns = staged_columns(con, _STAGE)
        present = [c for c, _ in columns]
        types = dict(columns)
        mapping = mapping or guess_prediction_mapping(present, project.manifest.slice_dimensions)
        features = _resolve_features(project, source, present, mapping)
        count = one(con, f"SELECT count(*) FROM {_STAGE}")[0]
        if count == 0:
            raise IngestError(f"{source.path.name} has a header but no data rows.",
                              "Export the data again; nothing was imported.")
        progress.report(0.3, f"Checking {count:,} rows")
        existing = dict(con.execute("SELECT name, dtype FROM log_columns").fetchall())
        feature_types = _feature_types(con, source, features, types, existing)
        check_cancelled(progress)
        notes = daylight_saving_notes(con, source, mapping.timestamp)
        progress.report(0.45, f"Importing {count:,} rows")
        try:
            # Fast path: one pass that checks while it inserts; a bad value aborts the transaction.
            result = _insert_predictions(project, con, source, digest, mapping, feature_types, existing, int(count),
                                         progress, notes)
        except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.ConstraintException) as exc:
            # Rolled back; a second, slower pass names the first bad row and column.
            _validate_predictions(con, source, mapping, feature_types)
            raise IngestError(f"{source.path.name} could not be imported: {str(exc).splitlines()[0]}",
                              "Nothing was imported. Check the file against the message.") from exc
        progress.report(1.0, f"Imported {count:,} rows from {source.path.name}")
        return result


class _ExactPathNeeded(Exception):
    """The one-pass CSV import met something only the staged, row-numbered path can judge or name."""


def _csv_reader(source: SourceFile) -> str:
    """SQL: DuckDB's typed CSV reader over the file, without the closing parenthesis (types may follow).

    Only the empty field reads as NULL: a list of missing-value spellings made DuckDB compare every field with
    each (about 15% of a 10M-row import). A number column with 'n/a' in it then fails its cast and takes the exact
    path, and text columns turn the spellings into NULL in the insert."""
    return (f"read_csv({sql_literal(str(literal_path(source.path)))}, header = true, auto_detect = true, "
            "strict_mode = true")


def _sniff_csv_types(con: duckdb.DuckDBPyConnection, source: SourceFile) -> dict[str, str]:
    """Column -> type as DuckDB's sniffer reads the CSV ({} when it cannot)."""
    try:
        return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {_csv_reader(source)})").fetchall()}
    except duckdb.Error:
        return {}


def _fast_csv_import(project: Project, con: duckdb.DuckDBPyConnection, source: SourceFile, digest: FileDigest,
                     mapping: PredictionMapping | None, progress: Progress, sniffed: dict[str, str]
                     ) -> ImportResult | None:
    """Import a CSV in one pass: DuckDB's reader types the columns as sniffed, and the insert checks every row as
    it goes. None when anything needs the exact path (a value that does not fit the sniffed type, a number column
    with a missing-value spelling, a ragged row, a decimal comma, a time with a zone name, an empty file): that
    path stages the file, decides each column on all its rows and names the first bad row. Nothing is kept."""
    base = _csv_reader(source)
    present = list(sniffed)
    if len(present) <= 1:
        return None  # one column: the sniffer gave up (a ragged row?), the exact path names the line
    mapping = mapping or guess_prediction_mapping(present, project.manifest.slice_dimensions)
    features = _resolve_features(project, source, present, mapping)
    existing = dict(con.execute("SELECT name, dtype FROM log_columns").fetchall())
    text = {mapping.record_id, *mapping.slices.values(), *(c for c in (mapping.model_version,) if c)}
    text |= {f for f in features if existing.get(f) == "VARCHAR"}  # a known category keeps its text as written
    if any(existing.get(f) == "DOUBLE" and not is_numeric_type(sniffed[f]) for f in features):
        return None  # a known number column with text in it: the exact path names the row
    if sniffed.get(mapping.timestamp, "").upper() not in ("TIMESTAMP", "TIMESTAMP_NS", "DATE"):
        return None  # offsets, zone names or odd formats: the exact path checks daylight saving, names bad times
    forced = ", ".join(f"{sql_literal(c)}: 'VARCHAR'" for c in sorted(text) if c in sniffed)
    relation = f"{base}{', types = {' + forced + '}' if forced else ''})"
    types = {**sniffed, **{c: "VARCHAR" for c in text if c in sniffed}}
    feature_types = {f: existing.get(f) or ("DOUBLE" if is_numeric_type(types[f]) else "VARCHAR") for f in features}
    new_text = [f for f, t in feature_types.items() if t == "VARCHAR" and f not in existing]

    def text_is_text(con: Any, import_id: int) -> None:
        # A new text feature that holds decimal commas, or only numbers once its missing spellings are NULL (the
        # sniffer's sample saw an 'n/a'), is decided by the exact path on all its rows.
        suspicious = [f"coalesce(bool_or({_comma(f)}) OR (bool_and({_numeric_or_missing(f)}) AND count({sql_ident(f)})"
                      " > 0), false)" for f in new_text]
        if suspicious and one(con, "SELECT " + " OR ".join(suspicious) + " FROM predictions WHERE import_id = ?",
                              [import_id])[0]:
            raise _ExactPathNeeded

    progress.report(0.3, f"Importing {source.path.name}")
    try:
        result = _insert_predictions(project, con, source, digest, mapping, feature_types, existing, None, progress,
                                     relation=relation, source_types=types, after_insert=text_is_text)
    except (_ExactPathNeeded, duckdb.ConversionException, duckdb.InvalidInputException,
            duckdb.ConstraintException):
        return None  # rolled back: nothing was kept
    if result.rows == 0:
        return None
    return result


def _resolve_features(project: Project, source: SourceFile, present: list[str], mapping: PredictionMapping
                      ) -> list[str]:
    """Check a mapping against the file's columns (roles, slices, features, clashes); returns the features."""
    unknown_dims = [d for d in mapping.slices if d not in project.manifest.slice_dimensions]
    if unknown_dims:
        raise IngestError(f"Slice dimension(s) {unknown_dims} are not in this project's manifest "
                          f"({', '.join(project.manifest.slice_dimensions)}).",
                          "Add them to [slices] dimensions in lineproof.toml, or map other columns.")
    _check_model_roles(source, present, mapping)
    roles = mapping.roles()
    _check_columns(source, present, {**roles, **{f"slice {d}": c for d, c in mapping.slices.items()}})
    used = set(roles.values()) | set(mapping.slices.values())
    features = list(mapping.features) if mapping.features is not None else [c for c in present if c not in used]
    _check_columns(source, present, {f"feature {f}": f for f in features})
    outputs = [f for f in features if f.lower() in MODEL_OUTPUT_NAMES] if mapping.features is None \
        and mapping.inputs_only else []
    if outputs:
        raise IngestError(f"{source.path.name} is imported as inputs only, but its column(s) "
                          f"{', '.join(repr(f) for f in outputs)} hold a model's output, not an input.",
                          "Import it with its model version and score (the file is a model's log), or drop "
                          "those columns, or list the inputs with --features; nothing was imported.")
    clash = [f for f in features if f in CORE_COLUMNS or f in OPERATOR_COLUMNS or f in project.manifest.slice_dimensions
             or f == "_row"]
    if clash:
        raise IngestError(f"{source.path.name}: feature column(s) {clash} clash with Lineproof's own columns.",
                          "Rename them in the file, or map them to their role; nothing was imported.")
    return features


def _feature_types(con, source: SourceFile, features: list[str], types: dict[str, str],
                   existing: dict[str, str]) -> dict[str, str]:
    """DOUBLE or VARCHAR per feature; a feature already known keeps its type."""
    result: dict[str, str] = {}
    undecided = []
    for f in features:
        if f in existing:
            result[f] = existing[f]
        elif is_numeric_type(types[f]):
            result[f] = "DOUBLE"
        elif types[f] == "VARCHAR":  # CSV, and Parquet text columns that may hold numbers
            undecided.append(f)
        else:
            result[f] = "VARCHAR"
    if undecided:
        parts = ", ".join(f"bool_and({_numeric_or_missing(f)})" for f in undecided)
        flags = one(con, f"SELECT {parts} FROM {_STAGE}")
        result.update({f: "DOUBLE" if flag else "VARCHAR" for f, flag in zip(undecided, flags, strict=True)})
        _refuse_decimal_commas(con, source, [f for f, flag in zip(undecided, flags, strict=True) if not flag])
    return result


# How logs spell a missing value; read as missing before a column's type is decided (and stored as NULL).
MISSING_SPELLINGS = ("", "NA", "N/A", "#N/A", "-", "--", "?", "NULL", "NONE", "NAN", "NIL")
# Column names that hold a model's output: never an input in an input-only import.
MODEL_OUTPUT_NAMES = {"score", "probability", "proba", "prediction", "predicted_label", "pred_label", "pred",
                      "decision", "model_version", "version_id", *OPERATOR_NAMES, "override_reason"}


def _spelled_missing(q: str) -> str:
    """SQL: the (quoted) column's text is one of the missing-value spellings, in any case and padding."""
    return f"upper(trim({q}::VARCHAR)) IN ({', '.join(repr(v) for v in MISSING_SPELLINGS)})"


def _numeric_or_missing(column: str) -> str:
    """SQL: the value reads as a number, or is missing. The spellings are only looked at where the cast failed
    (CASE evaluates a branch for the rows that reach it), so a numeric column costs one cast per value."""
    q = sql_ident(column)
    return f"(CASE WHEN TRY_CAST({q} AS DOUBLE) IS NOT NULL OR {q} IS NULL THEN true ELSE {_spelled_missing(q)} END)"


def as_double(column: str, checked: bool) -> str:
    """SQL: a text column as DOUBLE, missing spellings as NULL. `checked`: every value was seen to be a number or
    missing (the type was decided on these rows), so TRY_CAST is exact; else a stray text raises a conversion error
    (and the slower pass names its row)."""
    q = sql_ident(column)
    if checked:
        return f"TRY_CAST({q} AS DOUBLE)"
    return (f"(CASE WHEN TRY_CAST({q} AS DOUBLE) IS NOT NULL THEN TRY_CAST({q} AS DOUBLE) "
            f"WHEN {missing_as_null(column)} IS NULL THEN NULL ELSE CAST({q} AS DOUBLE) END)")


def missing_as_null(column: str) -> str:
    """SQL: a text column with the usual missing-value spellings turned into NULL."""
    q = sql_ident(column)
    return f"(CASE WHEN {_spelled_missing(q)} THEN NULL ELSE {q} END)"


# A number as a spreadsheet in a German or French locale writes it: 12,5 or 1.234,5 (never a plain integer).
_DECIMAL_COMMA = r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d+),\d+\s*$"


def _comma(column: str) -> str:
    """SQL: the value is a number with a decimal comma (the regular expression only where a comma is)."""
    q = sql_ident(column)
    return f"(CASE WHEN contains({q}, ',') THEN regexp_matches({q}, '{_DECIMAL_COMMA}') ELSE false END)"


def _refuse_decimal_commas(con, source: SourceFile, text_features: list[str]) -> None:
    """A feature that is numeric but for its decimal commas would silently become categorical: refuse instead."""
    if not text_features:
        return
    parts = ", ".join(
        f"bool_and({_comma(f)} OR {_numeric_or_missing(f)}) AND bool_or({_comma(f)}), "
        f"min(_row) FILTER (WHERE {_comma(f)}), arg_min({sql_ident(f)}, _row) FILTER (WHERE {_comma(f)})"
        for f in text_features)
    row = one(con, f"SELECT {parts} FROM {_STAGE}")
    for i, f in enumerate(text_features):
        if row[3 * i]:
            raise IngestError(
                f"{source.path.name}, {_row_text(source, row[3 * i + 1])}: feature column '{f}' holds numbers "
                f"written with a decimal comma (value {row[3 * i + 2]!r}); read as text they would make '{f}' a "
                "category and its drift meaningless.",
                "Export the file with a decimal point (in Excel: File > Options > Advanced, uncheck 'Use system "
                "separators'), or save it as Parquet; nothing was imported.")


def daylight_saving_notes(con: duckdb.DuckDBPyConnection, source: SourceFile, column: str) -> list[str]:
    """Times written with a zone name (2026-10-25 02:30 Europe/Berlin) that fall in a daylight-saving change: an
    hour that happens twice is stored as its later instant, one that never happens as an hour later; say so, with
    the first row, rather than choose silently."""
    if dict(staged_columns(con, _STAGE)).get(column, "VARCHAR") != "VARCHAR":
        return []
    q = sql_ident(column)
    row = one(con, f"""WITH z AS (SELECT _row, {q} AS text, regexp_extract({q}, '([A-Za-z_]+/[A-Za-z_+-]+)\\s*$', 1)
                                  AS zone FROM {_STAGE} WHERE contains({q}, '/')),
        w AS (SELECT _row, text, zone, TRY_CAST(trim(replace(text, zone, '')) AS TIMESTAMP) AS local,
                     TRY_CAST(text AS TIMESTAMPTZ) AS chosen FROM z WHERE zone <> ''),
        k AS (SELECT *, timezone(zone, chosen) = local AND timezone(zone, chosen - INTERVAL 1 HOUR) = local AS twice,
                     timezone(zone, chosen) <> local AS never FROM w WHERE local IS NOT NULL AND chosen IS NOT NULL)
        SELECT count(*) FILTER (WHERE twice), min(_row) FILTER (WHERE twice), arg_min(text, _row) FILTER (WHERE twice),
               arg_min(CAST(chosen AS TIMESTAMP), _row) FILTER (WHERE twice),
               count(*) FILTER (WHERE never), min(_row) FILTER (WHERE never), arg_min(text, _row) FILTER (WHERE never),
               arg_min(CAST(chosen AS TIMESTAMP), _row) FILTER (WHERE never) FROM k""")
    notes = []
    if row and row[0]:
        notes.append(f"{row[0]:,} time(s) in '{column}' fall in the hour a daylight-saving change repeats and were "
                     f"stored as the later of the two instants, e.g. {_row_text(source, row[1])}: {row[2]!r} -> "
                     f"{row[3]:%Y-%m-%d %H:%M} UTC. Write the UTC offset (e.g. +02:00) to choose.")
    if row and row[4]:
        notes.append(f"{row[4]:,} time(s) in '{column}' fall in the hour a daylight-saving change skips (they never "
                     f"happened) and were stored one hour on, e.g. {_row_text(source, row[5])}: {row[6]!r} -> "
                     f"{row[7]:%Y-%m-%d %H:%M} UTC. Check the logger's clock.")
    return notes


def utc_timestamp(con: duckdb.DuckDBPyConnection, column: str, dtype: str | None = None) -> str:
    """SQL for a staged column as a UTC TIMESTAMP: an offset in the text (+02:00, Z) or a time zone in the Parquet
    type is honoured; a time without either is taken as UTC (the connection's zone), never as this PC's zone."""
    dtype = (dtype or dict(staged_columns(con, _STAGE)).get(column, "VARCHAR")).upper()
    if dtype.startswith("TIMESTAMP") and "TIME ZONE" not in dtype:
        return f"CAST({sql_ident(column)} AS TIMESTAMP)"  # already naive UTC: skip the zone arithmetic per row
    return f"CAST(CAST({sql_ident(column)} AS TIMESTAMPTZ) AS TIMESTAMP)"


SCORE_KINDS = ("probability", "logit", "value")


def _outside_probability(con: duckdb.DuckDBPyConnection, m: PredictionMapping) -> str:
    """SQL condition: this row's score should be a probability and is not."""
    if m.score_kind not in (None, *SCORE_KINDS):
        raise IngestError(f"Unknown score kind {m.score_kind!r}.", f"Use one of: {', '.join(SCORE_KINDS)}.")
    if m.score_kind in ("logit", "value") or m.inputs_only:
        return "false"
    score, ver = sql_ident(m.score), sql_ident(m.model_version)
    outside = f"(CAST({score} AS DOUBLE) < 0 OR CAST({score} AS DOUBLE) > 1)"
    if m.score_kind == "probability":
        return outside
    values = [r[0] for r in con.execute("SELECT v.version_id FROM model_versions v JOIN models m USING (model_id) "
                                        "WHERE m.task <> 'binary'").fetchall()]
    return f"({outside} AND NOT list_contains({sql_literal_list(values)}, {ver}::VARCHAR))"


def _not_a_binary_decision(con: duckdb.DuckDBPyConnection, m: PredictionMapping) -> str:
    """SQL condition: a predicted label other than 0 or 1 on a row of a binary model (every model but regression
    and the other registered non-binary tasks)."""
    if m.score_kind == "value" or not m.predicted_label:
        return "false"
    values = [r[0] for r in con.execute("SELECT v.version_id FROM model_versions v JOIN models m USING (model_id) "
                                        "WHERE m.task <> 'binary'").fetchall()]
    label = sql_ident(m.predicted_label)
    return (f"({label} IS NOT NULL AND TRY_CAST({label} AS INTEGER) NOT IN (0, 1) AND NOT "
            f"list_contains({sql_literal_list(values)}, {sql_ident(m.model_version)}::VARCHAR))")


def sql_literal_list(values: list[str]) -> str:
    """A DuckDB list literal of strings."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]::VARCHAR[]"


def _model_checks(con, m: PredictionMapping) -> list[tuple[str, str, str]]:
    """Row checks of the model version and score columns."""
    ver, score = sql_ident(m.model_version), sql_ident(m.score)
    return [
        (f"column '{m.model_version}' (model version) is empty", m.model_version,
         f"{ver} IS NULL OR trim({ver}::VARCHAR) = ''"),
        (f"column '{m.score}' (score) is empty: a row without its score would count as a decision the model never "
         "made. Remove such rows, or import them as inputs only (--inputs-only) in a file of their own", m.score,
         f"{score} IS NULL OR trim({score}::VARCHAR) = ''"),
        (f"column '{m.score}' (score) is not a number", m.score, f"TRY_CAST({score} AS DOUBLE) IS NULL"),
        (f"column '{m.score}' (score) is NaN or infinite; scores must be finite", m.score,
         f"NOT isfinite(TRY_CAST({score} AS DOUBLE))"),
        (f"column '{m.score}' (score) is outside 0..1, so it is not a probability. If the model logs logits, "
         "import with --score-kind logit (turned into probabilities); if it is a regression output, register "
         "the model as regression or use --score-kind value", m.score,
         f"TRY_CAST({score} AS DOUBLE) IS NOT NULL AND {_outside_probability(con, m)}"),
    ]


def _validate_predictions(con, source: SourceFile, m: PredictionMapping, feature_types: dict[str, str]) -> None:
    rid, ts = sql_ident(m.record_id), sql_ident(m.timestamp)
    checks = [
        (f"column '{m.record_id}' (record id) is empty", m.record_id, f"{rid} IS NULL OR trim({rid}::VARCHAR) = ''"),
        (f"column '{m.timestamp}' (timestamp) is not a date-time", m.timestamp,
         f"{ts} IS NULL OR TRY_CAST({ts} AS TIMESTAMPTZ) IS NULL"),
    ]
    if not m.inputs_only:
        checks += _model_checks(con, m)
    if m.predicted_label:
        pl_ = sql_ident(m.predicted_label)
        checks.append((f"column '{m.predicted_label}' (predicted label) is not a whole number", m.predicted_label,
                       f"{pl_} IS NOT NULL AND TRY_CAST({pl_} AS INTEGER) IS NULL"))
        checks.append((f"column '{m.predicted_label}' (predicted label) is not 0 or 1 on a binary model's row "
                       "(0 = pass, 1 = defect); a regression or multi-class model must be registered as such",
                       m.predicted_label, _not_a_binary_decision(con, m)))
    if m.operator_decision:
        op = missing_as_null(m.operator_decision)
        checks.append((f"column '{m.operator_decision}' (operator decision) is not a decision: use 0 (pass) or 1 "
                       "(defect), empty where the operator made none", m.operator_decision,
                       f"{op} IS NOT NULL AND coalesce(TRY_CAST({op} AS DOUBLE) NOT IN (0, 1), true)"))
    for f, dtype in feature_types.items():
        if dtype == "DOUBLE":
            q = missing_as_null(f)
            checks.append((f"feature column '{f}' is not a number (earlier imports made it numeric)", f,
                           f"{q} IS NOT NULL AND TRY_CAST({q} AS DOUBLE) IS NULL"))
    bad = _first_bad(con, checks)
    if bad:
        _raise_bad(source, bad)


_POLARS_DISTINCT_MAX_ROWS = 20_000_000


def _check_record_ids(con, source: SourceFile, import_id: int, rows: int) -> None:
    """Inside the import's transaction: record ids unique in the file and new to the project."""
    # Distinct 64-bit hashes prove distinct ids and cost less than distinct strings; only a
    # (duplicate or colliding) shortfall pays for the exact search.
    if rows <= _POLARS_DISTINCT_MAX_ROWS:
        # polars counts 10M distinct hashes in 0.2 s where DuckDB's DISTINCT aggregate takes 0.7-1.2 s (18% of a
        # 10M-row import); the hashes are 8 bytes a row, so larger imports stay in DuckDB, which can spill.
        import polars as pl

        hashes = con.sql(f"SELECT hash(record_id) AS h FROM predictions WHERE import_id = {int(import_id)}")
        dup = rows - pl.from_arrow(hashes.to_arrow_table())["h"].n_unique()
    else:
        dup = one(con, "SELECT count(*) - count(DISTINCT hash(record_id)) FROM predictions WHERE import_id = ?",
                  [import_id])[0]
    if dup and one(con, "SELECT count(*) - count(DISTINCT record_id) FROM predictions WHERE import_id = ?",
                   [import_id])[0]:
        rid, n = one(con, "SELECT record_id, count(*) FROM predictions WHERE import_id = ? GROUP BY 1 "
                          "HAVING count(*) > 1 ORDER BY 1 LIMIT 1", [import_id])
        raise IngestError(f"{source.path.name}: record id {rid!r} appears {n} times.",
                          "Record ids must be unique; nothing was imported.")
    if one(con, "SELECT count(*) FROM predictions WHERE import_id <> ?", [import_id])[0]:
        clash = one(con, "SELECT n.record_id FROM predictions n SEMI JOIN (SELECT record_id FROM predictions "
                         "WHERE import_id <> $i) o USING (record_id) WHERE n.import_id = $i LIMIT 1", {"i": import_id})
        if clash:
            raise IngestError(f"{source.path.name}: record id {clash[0]!r} is already in the project.",
                              "This file overlaps an earlier import; remove the overlap; nothing was imported.")


def _insert_predictions(project: Project, con, source: SourceFile, digest: FileDigest, m: PredictionMapping,
                        feature_types: dict[str, str], existing: dict[str, str], count: int | None,
                        progress: Progress, notes: list[str] = (), relation: str = _STAGE,
                        source_types: dict[str, str] | None = None,
                        after_insert: Callable[[Any, int], None] | None = None) -> ImportResult:
    new_columns = [(d, "VARCHAR", "slice") for d in m.slices if d not in existing]
    new_columns += [(role, dtype, role) for role, dtype in OPERATOR_COLUMNS.items()
                    if getattr(m, role) and role not in existing]
    new_columns += [(f, t, "feature") for f, t in feature_types.items() if f not in existing]
    rid = sql_ident(m.record_id)
    targets = ["record_id", "ts", "import_id"]
    source_types = source_types if source_types is not None else dict(staged_columns(con, _STAGE))
    exprs = [f"CASE WHEN trim({rid}::VARCHAR) <> '' THEN {rid}::VARCHAR ELSE error('empty record id') END",
             utc_timestamp(con, m.timestamp, source_types.get(m.timestamp)), "$import_id"]
    if not m.inputs_only:
        ver, score = sql_ident(m.model_version), sql_ident(m.score)
        value = f"CAST({score} AS DOUBLE)"
        if m.score_kind == "logit":
            value = f"1 / (1 + exp(-{value}))"
        targets += ["version_id", "score"]
        exprs += [f"CASE WHEN trim({ver}::VARCHAR) <> '' THEN {ver}::VARCHAR ELSE error('empty model version') END",
                  f"CASE WHEN {score} IS NULL THEN error('empty score') "
                  f"WHEN NOT isfinite(CAST({score} AS DOUBLE)) THEN error('score not finite') "
                  f"WHEN {_outside_probability(con, m)} THEN error('score outside 0..1') ELSE {value} END"]
    if m.predicted_label:
        targets.append("predicted_label")
        exprs.append(f"CASE WHEN {_not_a_binary_decision(con, m)} THEN error('predicted label not 0 or 1') "
                     f"ELSE CAST({sql_ident(m.predicted_label)} AS INTEGER) END")
    if m.operator_decision:
        targets.append("operator_decision")
        op = missing_as_null(m.operator_decision)
        exprs.append(f"CASE WHEN {op} IS NOT NULL AND coalesce(TRY_CAST({op} AS DOUBLE) NOT IN (0, 1), true) "
                     f"THEN error('operator decision not 0 or 1') ELSE CAST(TRY_CAST({op} AS DOUBLE) AS INTEGER) END")
    if m.override_reason:
        targets.append("override_reason")
        exprs.append(f"CAST({missing_as_null(m.override_reason)} AS VARCHAR)")
    for dim, col in m.slices.items():
        targets.append(dim)
        exprs.append(f"{sql_ident(col)}::VARCHAR")
    for f, t in feature_types.items():
        targets.append(f)
        if t == "DOUBLE" and source_types.get(f, "VARCHAR") == "VARCHAR":
            exprs.append(as_double(f, checked=f not in existing))  # decided on these very rows, or known before
        elif t == "VARCHAR" and source_types.get(f, "VARCHAR") == "VARCHAR":
            exprs.append(f"CAST({missing_as_null(f)} AS VARCHAR)")  # 'n/a' is missing in a category too
        else:
            exprs.append(f"CAST({sql_ident(f)} AS {t})")
    details = {"file": source.path.name, "sha256": None, "rows": count, "mapping": asdict(m)}
    if notes:
        details["notes"] = list(notes)
    with project.change("predictions.import", source.path.name, details, con=con):
        import_id = _next_import_id(con)
        details["import_id"] = import_id
        for name, dtype, role in new_columns:
            con.execute(f"ALTER TABLE predictions ADD COLUMN {sql_ident(name)} {dtype}")
            con.execute("INSERT INTO log_columns VALUES (?, ?, ?)", [name, role, dtype])
        cols = ", ".join(sql_ident(t) for t in targets)
        inserted = one(con, f"INSERT INTO predictions ({cols}) SELECT {', '.join(exprs)} FROM {relation}",
                       {"import_id": import_id})[0]
        count = int(inserted) if count is None else count
        details["rows"] = count
        details["sha256"] = sha = digest.sha(con)  # hashed while the rows went in; a re-import stops here
        check_cancelled(progress)
        if after_insert is not None:
            after_insert(con, import_id)
        progress.report(0.85, "Checking record ids")
        _check_record_ids(con, source, import_id, count)
        summary.add_predictions(con, import_id)
        con.execute("INSERT INTO imports VALUES (?, 'predictions', ?, ?, ?, ?, now()::TIMESTAMP)",
                    [import_id, source.path.name, sha, count, json.dumps(asdict(m))])
        progress.report(0.95, "Committing")
    return ImportResult(import_id, source.path.name, sha, count, tuple(n for n, _, _ in new_columns),
                        notes=tuple(notes))


def import_labels(project: Project, path: Path | str, mapping: LabelMapping | None = None,
                  skip_unknown: bool = False, progress: Progress | None = None) -> ImportResult:
    """Import ground-truth labels that join predictions by record id; unknown ids are refused or reported."""
    progress = progress or NullProgress()
    mapping = mapping or LabelMapping()

    def check_header(source: SourceFile, present: list[str]) -> None:
        _check_columns(source, present, {"record_id": mapping.record_id, "label": mapping.label})

    with _staged_file(project, path, progress, check_header) as (con, source, digest):
        sha = digest.sha(con)  # label files are small: refuse a re-import before the checks
        present = [c for c, _ in staged_columns(con, _STAGE)]
        wanted = {"record_id": mapping.record_id, "label": mapping.label}
        if mapping.labelled_at and mapping.labelled_at in present:
            wanted["labelled_at"] = mapping.labelled_at
        _check_columns(source, present, wanted)
        count = one(con, f"SELECT count(*) FROM {_STAGE}")[0]
        if count == 0:
            raise IngestError(f"{source.path.name} has a header but no data rows.", "Nothing was imported.")
        rid, lab = sql_ident(mapping.record_id), sql_ident(mapping.label)
        checks = [
            (f"column '{mapping.record_id}' (record id) is empty", mapping.record_id,
             f"{rid} IS NULL OR trim({rid}::VARCHAR) = ''"),
            (f"column '{mapping.label}' (label) is not a finite number", mapping.label,
             f"NOT coalesce(isfinite(TRY_CAST({lab} AS DOUBLE)), false)"),
        ]
        at_expr = "now()::TIMESTAMP"
        if "labelled_at" in wanted:
            at = sql_ident(mapping.labelled_at)
            checks.append((f"column '{mapping.labelled_at}' (labelled at) is not a date-time", mapping.labelled_at,
                           f"{at} IS NULL OR TRY_CAST({at} AS TIMESTAMPTZ) IS NULL"))
            at_expr = utc_timestamp(con, mapping.labelled_at)
        progress.report(0.3, f"Checking {count:,} labels")
        bad = _first_bad(con, checks)
        if bad:
            _raise_bad(source, bad)
        dup = one(con, f"SELECT {rid}::VARCHAR, count(*), list(_row ORDER BY _row)[1:3] FROM {_STAGE} GROUP BY 1 "
                       "HAVING count(*) > 1 ORDER BY min(_row) LIMIT 1")
        if dup:
            rows = " and ".join(_row_text(source, r) for r in dup[2])
            raise IngestError(f"{source.path.name}: record id {dup[0]!r} is labelled {dup[1]} times, in {rows}.",
                              "Keep one label per record in a file (a later file with a newer labelled_at corrects "
                              "it); nothing was imported.")
        check_cancelled(progress)
        unknown_n, examples = one(con,
            f"SELECT count(*), list(rid ORDER BY _row)[1:5] FROM (SELECT {rid}::VARCHAR AS rid, _row FROM {_STAGE}) s "
            "ANTI JOIN predictions p ON p.record_id = s.rid")
        if unknown_n and not skip_unknown:
            raise IngestError(
                f"{source.path.name}: {unknown_n:,} of {count:,} labels name record ids that are not in the "
                f"project, e.g. {', '.join(examples)}.",
                "Import the predictions for them first, or import with --skip-unknown to keep only the known ones "
                "(the unknown ones are reported); nothing was imported.")
        details = {"file": source.path.name, "sha256": sha, "rows": count, "unknown": unknown_n,
                   "mapping": asdict(mapping)}
        progress.report(0.5, f"Joining {count:,} labels")
        with project.change("labels.import", source.path.name, details, con=con):
            import_id = _next_import_id(con)
            con.execute(f"CREATE OR REPLACE TEMP TABLE _new_labels AS SELECT {rid}::VARCHAR AS record_id, "
                        f"CAST({lab} AS DOUBLE) AS label, {at_expr} AS labelled_at FROM {_STAGE} s "
                        f"SEMI JOIN predictions p ON p.record_id = s.{rid}::VARCHAR")
            # The newest verdict wins, whatever the import order: a label older than the one stored is kept out.
            older = one(con, "SELECT count(*) FROM _new_labels n JOIN labels l USING (record_id) "
                             "WHERE n.labelled_at < l.labelled_at")[0]
            if older:
                con.execute("DELETE FROM _new_labels WHERE record_id IN (SELECT n.record_id FROM _new_labels n "
                            "JOIN labels l USING (record_id) WHERE n.labelled_at < l.labelled_at)")
            details["older_than_stored"] = int(older)
            replaced = one(con, "SELECT count(*) FROM labels l SEMI JOIN _new_labels n USING (record_id)"
                                   )[0]
            summary.add_labels(con, "_new_labels")
            if replaced:  # a later label corrects an earlier one; the audit entry records how many
                con.execute("DELETE FROM labels WHERE record_id IN (SELECT record_id FROM _new_labels)")
            kept = one(con, "INSERT INTO labels SELECT record_id, label, labelled_at, ? FROM _new_labels",
                               [import_id])[0]
            con.execute("INSERT INTO imports VALUES (?, 'labels', ?, ?, ?, ?, now()::TIMESTAMP)",
                        [import_id, source.path.name, sha, kept, json.dumps(asdict(mapping))])
            con.execute("DROP TABLE _new_labels")
            details.update(import_id=import_id, replaced=replaced)
        progress.report(1.0, f"Imported {kept:,} labels")
        return ImportResult(import_id, source.path.name, sha, int(kept), (), int(unknown_n),
                            tuple(examples or ()) if unknown_n else (), int(replaced), int(older))
