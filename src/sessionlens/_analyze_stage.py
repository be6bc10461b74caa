"""DuckDB staging for ``analyze_sessions``: the run's intermediate tables stay in the database.

:mod:`sessionlens.cache` decides what to compute; this module owns where the intermediate
results of one run live, so that a run over a million sessions never holds them all in Python:

- ``_sl_tsum`` and ``_sl_cand``: per analysable session its trace count and hash, and the
  *candidates*, the sessions whose inputs may have changed since the previous run (a
  watermark in ``settings``, see :func:`stage_fingerprints`);
- ``_sl_s_traces``, ``_sl_s_observations``, ``_sl_s_tool_calls``: when the candidates are
  few, their rows of those tables, which the rest of the run reads instead of the whole
  tables (:func:`_stage_slices`);
- ``_sl_fp``: every analysable session's input fingerprint (compiled from
  :func:`~sessionlens.analysis.session_frame.session_fingerprints` for the candidates, the
  cached one for the others);
- ``_sl_todo``: the sessions to (re)compute, and ``_sl_users``: the users whose session tags
  can have moved (owners of sessions recomputed or removed, and of untagged sessions), so tags
  are recounted for those users only;
- ``_sl_py``: the Python pass's rows, appended batch by batch as Arrow;
- ``_sl_part_*``: the analysis frame's parts (flow progress, costs, ..., tool sequences;
  :data:`~sessionlens.analysis.session_frame.FRAME_PARTS`) and the narrow frame joined part
  by part, one statement each (:func:`frame_stager`): as one query, its dozens of joins and
  aggregations are all live at once, and their hash tables together outgrew
  ``memory_limit`` instead of spilling (100k sessions needed over 400 MB; the single query
  failed at 1M sessions with 2 GB). The wide columns (the Python pass's rows, each
  session's call list) join once, in ``_sl_frame``'s query;
- ``_sl_clock``: the inactivity rule's cutoff, one row (:func:`stage_clock`);
- ``_sl_frame``: the analysis frame, run by DuckDB and inserted from there, never fetched.

All are DuckDB temporary tables (per connection, spilled to the temp directory past
``memory_limit``), created inside the caller's transaction and dropped by :func:`drop`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import duckdb
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends import BaseBackend

from ._arrow_sql import ARROW, execute_arrow
from ._sql_cache import compile_cached
from .analysis._ibis import duckdb_connection
from .analysis.session_frame import FRAME_PARTS, session_fingerprints, trace_summaries

__all__ = [
    "TEMP",
    "drop",
    "frame_stager",
    "stage_clock",
    "stage_fingerprints",
    "stage_python_rows",
    "stage_todo",
    "write_rows",
]

#: Where Ibis finds the temporary tables: ``backend.table(name, database=TEMP)``.
TEMP = ("temp", "main")
#: Canonical tables read through slices in a small incremental run, and their slices.
_SLICED = {
    "traces": "_sl_s_traces",
    "observations": "_sl_s_observations",
    "tool_calls": "_sl_s_tool_calls",
}
#: Slice when at most this share of the analysable sessions may have changed; above it a
#: copy costs more than it saves.
_SLICE_SHARE = 0.25
_TABLES = (
    *_SLICED.values(),
    "_sl_tsum",
    "_sl_cand",
    "_sl_fp",
    "_sl_todo",
    "_sl_users",
    "_sl_py",
    *(f"_sl_part_{part}" for part in FRAME_PARTS),
    *(f"_sl_part_frame_{part}" for part in FRAME_PARTS[:-1]),
    "_sl_frame",
    "_sl_new",
    "_sl_clock",
)
#: ``settings`` keys: the newest observation ``loaded_at`` the last run saw, and the count and
#: XOR of row hashes of the rows stamped up to then; the next run hashes only sessions that
#: may have changed since.
_WATERMARK = "analysis_loaded_until"
_COUNT = "analysis_observation_count"
_XOR = "analysis_observation_xor"


def _materialise(
    db: BaseBackend, name: str, expr: ir.Table, *, slot: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Run ``expr`` into the temporary table ``name`` inside DuckDB; return the connection.

    Compiled once here: Ibis's ``create_table`` compiles the expression to a sqlglot tree
    and renders it again inside its ``INSERT`` (for the 50 KB analysis frame, 0.4 s each);
    and not at all when the previous run compiled the same expression (:mod:`._sql_cache`,
    one entry per ``slot``, default ``name``: give each expression that fills ``name`` its own).
    """
    con = duckdb_connection(db)
    if con is None:  # analyze_sessions only stages on DuckDB
        raise TypeError("staging needs the DuckDB backend")
    db._run_pre_execute_hooks(expr)  # registers the memtables it uses (flows, price links)
    sql = compile_cached(con, db, expr, slot=slot or name)
    # ``name`` is one of this module's constants; the query is compiled, nothing pasted.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    return con


def _state(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """What the previous run recorded about ``observations`` (empty if nothing)."""
    rows = con.execute(
        "SELECT key, value FROM settings WHERE key IN (?, ?, ?)", [_WATERMARK, _COUNT, _XOR]
    ).fetchall()
    return {str(k): str(v) for k, v in rows}


def stage_fingerprints(
    db: BaseBackend, *, include_internal: bool, version: str, config: str, force: bool
) -> tuple[int, BaseBackend]:
    """Fill ``_sl_fp`` (session_id, input_fingerprint) for every analysable session.

    Only *candidates* are hashed; every other session keeps its cached fingerprint, which is
    then provably current. The previous run recorded the newest observation ``loaded_at`` it
    saw (the loaders stamp every row they insert or replace) and the count and XOR of hashes
    of those rows (id, trace, content hash). If the rows stamped up to then are still exactly
    those (same count and XOR: nothing replaced, deleted, moved or edited in SQL), a session
    is a candidate only when

    - it has no cached row with this analyzer version and configuration, or that row was
      ``in_progress``;
    - its trace count and trace hash (:func:`trace_summaries`, over ``traces`` only) differ
      from the cached fingerprint's: a trace was added, changed, moved or removed;
    - one of its observations was stamped after the previous run's watermark (or has none).

    Otherwise (first run, ``force``, or the old rows changed) every session is hashed. Returns
    the number of analysable sessions and the backend the rest of the run reads
    (:func:`_stage_slices`). This run's watermark, count and XOR are written to
    ``settings`` inside the caller's transaction, for the next run.
    """
    con = duckdb_connection(db)
    if con is None:
        raise TypeError("staging needs the DuckDB backend")
    state = _state(con)
    since = state.get(_WATERMARK) or "-infinity"
    seen = con.execute(
        "SELECT count(*) FILTER (loaded_at <= ?::TIMESTAMP), "
        "coalesce(bit_xor(h) FILTER (loaded_at <= ?::TIMESTAMP), 0)::TEXT, "
        "coalesce(max(loaded_at)::TEXT, ''), count(loaded_at), "
        "coalesce(bit_xor(h) FILTER (loaded_at IS NOT NULL), 0)::TEXT "
        "FROM (SELECT loaded_at, hash(concat_ws(':', observation_id, trace_id, row_hash)) "
        "AS h FROM observations)",
        [since, since],
    ).fetchone()
    assert seen is not None  # an aggregate returns one row
    kept_count, kept_xor, watermark, count, xor = seen
    unchanged = (
        not force
        and _WATERMARK in state
        and state.get(_COUNT) == str(kept_count)
        and state.get(_XOR) == kept_xor
    )
    if unchanged:
        _stage_candidates(db, include_internal, version, config, since)
        scoped = _stage_slices(db, whole=False)
        cand = scoped.table("_sl_cand", database=TEMP)
        fps = session_fingerprints(scoped, include_internal=include_internal, sessions=cand)
        _materialise(scoped, "_sl_fp", fps)
        con.execute(
            "INSERT INTO _sl_fp SELECT a.session_id, a.input_fingerprint FROM _sl_tsum t "
            "JOIN session_analysis a USING (session_id) "
            "WHERE t.session_id NOT IN (SELECT session_id FROM _sl_cand)"
        )
    else:
        fps = session_fingerprints(db, include_internal=include_internal)
        _materialise(db, "_sl_fp", fps, slot="_sl_fp:all")
        scoped = _stage_slices(db, whole=True)
        # The next run is likely incremental: compile (and cache) its first query now.
        compile_cached(
            con, db, trace_summaries(db, include_internal=include_internal), slot="_sl_tsum"
        )
    con.executemany(
        "INSERT OR REPLACE INTO settings VALUES (?, ?)",
        [[_WATERMARK, watermark], [_COUNT, str(count)], [_XOR, xor]],
    )
    row = con.execute("SELECT count(*) FROM _sl_fp").fetchone()
    return (int(row[0]) if row else 0), scoped


def _stage_candidates(
    db: BaseBackend, include_internal: bool, version: str, config: str, since: str
) -> None:
    """``_sl_cand``: the analysable sessions whose inputs may have changed (see above)."""
    con = _materialise(db, "_sl_tsum", trace_summaries(db, include_internal=include_internal))
    # The watermark filter skips DuckDB row groups by their min/max: it reads new rows only.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sl_cand AS SELECT t.session_id FROM _sl_tsum t "
        "LEFT JOIN session_analysis a USING (session_id) "
        "WHERE a.session_id IS NULL OR a.analyzer_version IS DISTINCT FROM ? "
        "OR a.config_fingerprint IS DISTINCT FROM ? OR a.status = 'in_progress' "
        "OR split_part(a.input_fingerprint, ':', 1) IS DISTINCT FROM t.tn::TEXT "
        "OR split_part(a.input_fingerprint, ':', 3) IS DISTINCT FROM t.tx::TEXT "
        "OR t.session_id IN (SELECT tr.session_id FROM traces tr WHERE tr.trace_id IN ("
        "SELECT trace_id FROM observations "
        "WHERE loaded_at > ?::TIMESTAMP OR loaded_at IS NULL))",
        [version, config, since],
    )


#: Sessions whose tag a recount reads from their observations besides the changed ones
#: (:func:`sessionlens.analysis.tags.assign_session_tags`); an internal session never has
#: a tag, nor agent traces to read.
_UNTAGGED = "SELECT session_id FROM sessions WHERE session_tag IS NULL AND is_internal IS NOT TRUE"


def _stage_slices(db: BaseBackend, *, whole: bool) -> BaseBackend:
    """The backend the rest of the run reads: one over this run's slices.

    When at most :data:`_SLICE_SHARE` of the analysable sessions are candidates (and not
    ``whole``), the rows of ``traces``, ``observations`` and ``tool_calls`` of the candidates
    (everything the fingerprints and the analysis frame of this run read), and the traces and
    observations of untagged sessions (what the tag recount reads besides the candidates),
    are copied once into temporary tables. The backend returned reads those under the
    canonical names, so every analysis scans a few thousand rows instead of probing the whole
    tables once per join. Otherwise the slices are temporary views of the whole tables: the
    analyses then read the same names either way, so their expressions, and the compiled SQL
    the cache keeps (:mod:`._sql_cache`), are the same in a full and in an incremental run.
    Results are the same either way.
    """
    con = duckdb_connection(db)
    if con is None:
        raise TypeError("staging needs the DuckDB backend")
    if not whole:
        row = con.execute(
            "SELECT (SELECT count(*) FROM _sl_cand), (SELECT count(*) FROM _sl_tsum)"
        ).fetchone()
        whole = row is None or row[0] > _SLICE_SHARE * row[1]
    # ``rowid IN (...)`` lets DuckDB find the rows on the key column alone and fetch only
    # those (a plain semi-join reads every column of every row: 2 s instead of 0.1 s).
    for table, key, keys in (
        # Untagged sessions too: session tags recount them from their observations.
        ("traces", "session_id", f"SELECT session_id FROM _sl_cand UNION ALL {_UNTAGGED}"),
        ("observations", "trace_id", "SELECT trace_id FROM _sl_s_traces"),
        ("tool_calls", "session_id", "SELECT session_id FROM _sl_cand"),
    ):
        # Names are this module's constants; nothing from the data is pasted.
        if whole:  # a view is expanded into each query: the same plan as the table itself
            con.execute(f"CREATE OR REPLACE TEMP VIEW {_SLICED[table]} AS SELECT * FROM {table}")
            continue
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_SLICED[table]} AS SELECT * FROM {table} "
            f"WHERE rowid IN (SELECT rowid FROM {table} WHERE {key} IN ({keys}))"
        )
    return _sliced_backend()(con)


@functools.cache
def _sliced_backend() -> Callable[[duckdb.DuckDBPyConnection], BaseBackend]:
    """A factory of DuckDB Ibis backends that read the slices under the canonical names
    (built on first use: importing the Ibis DuckDB backend takes 0.2 s)."""
    from ibis.backends.duckdb import Backend

    class SlicedBackend(Backend):
        def table(self, name: str, /, *, database: str | tuple[str, str] | None = None) -> ir.Table:
            if database is not None:
                return super().table(name, database=database)
            # Canonical tables keep their schema for the run (one transaction), and each
            # lookup is a query: the analyses ask for the same few tables dozens of times.
            # (Equal names give equal expressions, so a cached one is the same table.)
            known: dict[str, ir.Table] = self.__dict__.setdefault("_sl_known", {})
            if name not in known:
                known[name] = self._canonical(name)
            return known[name]

        def _canonical(self, name: str) -> ir.Table:
            if name not in _SLICED:
                return super().table(name)
            # With the whole table's schema: a copied slice loses its NOT NULL columns
            # (a view keeps them), and the expression must be the same either way for
            # the compiled-SQL cache to serve an incremental run the full run's SQL.
            # The slice holds a subset of the rows, so the constraints hold for it too.
            sliced = super().table(_SLICED[name], database=TEMP).op()
            schema = super().table(name).schema()
            return sliced.copy(schema=schema).to_expr()

    return SlicedBackend.from_connection


def stage_todo(
    con: duckdb.DuckDBPyConnection, *, config: str, version: str, force: bool
) -> tuple[list[str], int]:
    """Fill ``_sl_todo`` and ``_sl_users``, delete cached rows of vanished sessions.

    A session is to do when forced, new, or its input fingerprint, analyzer version or
    configuration differ from its cached row, or it was ``in_progress``. Returns the ids to
    do (sorted) and the number of rows removed.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sl_todo AS "
        "SELECT f.session_id FROM _sl_fp f LEFT JOIN session_analysis a USING (session_id) "
        "WHERE ? OR a.session_id IS NULL OR a.input_fingerprint IS DISTINCT FROM "
        "f.input_fingerprint OR a.analyzer_version IS DISTINCT FROM ? "
        "OR a.config_fingerprint IS DISTINCT FROM ? OR a.status = 'in_progress'",
        [force, version, config],
    )
    # Tags count a user's sessions in start order: a recomputed, removed or untagged session
    # can move the counters of its user's other sessions, and of no one else's.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _sl_users AS "
        "SELECT DISTINCT s.user_id FROM sessions s "
        "WHERE s.session_id IN (SELECT session_id FROM _sl_todo) "
        "OR (s.session_tag IS NULL AND s.session_id IN (SELECT session_id FROM _sl_fp)) "
        "UNION SELECT a.user_id FROM session_analysis a "
        "WHERE a.session_id NOT IN (SELECT session_id FROM _sl_fp)"
    )
    removed = con.execute(
        "DELETE FROM session_analysis WHERE session_id NOT IN (SELECT session_id FROM _sl_fp)"
    ).fetchone()
    ids = [str(r[0]) for r in con.execute("SELECT session_id FROM _sl_todo ORDER BY 1").fetchall()]
    return ids, int(removed[0]) if removed else 0


def stage_clock(db: BaseBackend, *, cutoff: datetime) -> ir.Table:
    """``_sl_clock``: one row, ``cutoff`` (the inactivity rule's "recent" bound) as a table.

    The analysis frame reads it instead of a literal, so the frame's expression is the same
    from one run to the next and its compiled SQL is reused (:mod:`._sql_cache`).
    """
    con = duckdb_connection(db)
    if con is None:
        raise TypeError("staging needs the DuckDB backend")
    con.execute("CREATE OR REPLACE TEMP TABLE _sl_clock AS SELECT ?::TIMESTAMP AS cutoff", [cutoff])
    return db.table("_sl_clock", database=TEMP)


def stage_python_rows(
    con: duckdb.DuckDBPyConnection, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> None:
    """Append the Python pass's record batches to ``_sl_py`` as they come."""
    # Through replacement scans, not registered views: a view dropped in the run's
    # transaction would keep its batch in memory until the commit (``_arrow_sql``).
    execute_arrow(
        con, f"CREATE OR REPLACE TEMP TABLE _sl_py AS SELECT * FROM {ARROW}", schema.empty_table()
    )
    for batch in batches:
        rows = pa.Table.from_batches([batch])
        execute_arrow(con, f"INSERT INTO _sl_py SELECT * FROM {ARROW}", rows)


def frame_stager(db: BaseBackend) -> Callable[[str, ir.Table], ir.Table]:
    """The ``stage`` of :func:`~sessionlens.analysis.session_frame.session_frame` for ``db``.

    Each part of the frame, then the frame with that part joined, is run into the temporary
    table ``_sl_part_<name>`` and read from there: DuckDB then holds one part's hash tables
    (or one join's) at a time and spills what does not fit. A table is dropped as soon as the
    next frame holds its rows. The frame holds the narrow parts only: the wide ones join in
    the writer's query (:func:`~sessionlens.analysis.session_frame.session_frame`).
    """
    names = {*FRAME_PARTS, *(f"frame_{p}" for p in FRAME_PARTS[:-1])}
    live: list[str] = []

    def stage(name: str, expr: ir.Table) -> ir.Table:
        if name not in names:  # the table name is built from it
            raise ValueError(f"unknown frame part {name!r}; expected one of {FRAME_PARTS}")
        con = _materialise(db, f"_sl_part_{name}", expr)
        if name.startswith("frame_"):  # the previous frame and this part are in it now
            for done in live:  # names checked above
                con.execute(f"DROP TABLE IF EXISTS temp.main._sl_part_{done}")
            live.clear()
        live.append(name)
        return db.table(f"_sl_part_{name}", database=TEMP)

    return stage


def write_rows(
    db: BaseBackend,
    frame: ir.Table,
    *,
    columns: Sequence[str],
    version: str,
    config: str,
) -> None:
    """Replace the ``session_analysis`` rows of the sessions in ``frame``.

    ``frame`` is the analysis frame (one row per session, ``tool_calls`` as an
    array of structs); bookkeeping columns are added here. Column names are constants of
    :mod:`sessionlens.cache`.
    """
    select = ", ".join(
        {
            "tool_sequence_json": "coalesce(to_json(r.tool_calls), '[]')::JSON",
            "analyzer_version": "?",
            "config_fingerprint": "?",
            "input_fingerprint": "f.input_fingerprint",
            "analyzed_at": "now()::TIMESTAMP",
            "created_at": "coalesce(a.created_at, now()::TIMESTAMP)",
        }.get(c, f"r.{c}")
        for c in columns
    )
    con = _materialise(db, "_sl_frame", frame)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _sl_new AS SELECT {select} FROM _sl_frame r "
        "JOIN _sl_fp f USING (session_id) LEFT JOIN session_analysis a USING (session_id)",
        [version, config],
    )
    con.execute("DELETE FROM session_analysis WHERE session_id IN (SELECT session_id FROM _sl_new)")
    con.execute(f"INSERT INTO session_analysis ({', '.join(columns)}) SELECT * FROM _sl_new")


def drop(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every staging table of this connection (after commit or rollback)."""
    views = {
        str(r[0])
        for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE database_name = 'temp'"
        ).fetchall()
    }
    for name in _TABLES:
        kind = "VIEW" if name in views else "TABLE"  # a slice is one or the other
        con.execute(f"DROP {kind} IF EXISTS temp.main.{name}")
