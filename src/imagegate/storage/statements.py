"""Statements on the request path, compiled once per dialect and run on the driver's cursor.

A request runs nine small statements (the key lookup; reserve: 3; the end of the request: 5).
Through `Connection.execute` each paid SQLAlchemy's cache key, execution context and result
wrapping, 10-15 us over the driver's own 2-6 us: auth + reserve + finish took 415 -> 255 us on
SQLite. A `Statement` compiles its Core construct once for each engine's dialect, then hands the
SQL and the parameters to the DBAPI cursor of the caller's connection, in its transaction.

What SQLAlchemy would have added is kept: the statement's own literal values, the types' bind
and result processors, autobegin (a write on a fresh connection is committed by `commit()`),
and driver errors raised as `sqlalchemy.exc` (IntegrityError, OperationalError...). Any
construct it cannot run this way (expanding IN, escaped names) goes through `execute`. Not
kept: engine events (`before_cursor_execute`) and `echo` logging do not see these statements.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


def json_text(value: Any) -> str:
    """A JSON column's text, keys sorted: orjson (the stdlib's encoder was 1-2% of a request)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass(slots=True)
class _Plan:
    sql: str
    order: tuple[str, ...] | None  # positional paramstyles: the parameter names in order
    names: tuple[str, ...]  # every bind parameter, as rendered
    fixed: Mapping[str, Any]  # the statement's own values (`status == 'held'`)
    bind: tuple[tuple[str, Processor], ...]
    columns: tuple[str, ...]  # a SELECT's result keys
    results: tuple[tuple[int, Processor], ...] | None = None  # from the first result's types

    def parameters(self, params: Mapping[str, Any]) -> Any:
        values = {**self.fixed, **params} if self.fixed else dict(params)
        for name, process in self.bind:
            values[name] = process(values[name])
        if self.order is not None:
            return tuple(values[name] for name in self.order)
        return {name: values[name] for name in self.names}


class Statement:
    """One prebuilt Core statement; `columns` are the keys an INSERT's callers pass."""

    def __init__(self, clause: Executable, columns: Sequence[str] | None = None) -> None:
        self.clause = clause
        self.columns = list(columns) if columns is not None else None
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan | None] = weakref.WeakKeyDictionary()

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute; the number of rows matched (UPDATE, DELETE) or written."""
        plan = self._plan(conn)
        if plan is None:
            return int(conn.execute(self.clause, dict(params)).rowcount)
        cursor = self._execute(conn, plan, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of a SELECT, by column key, or None."""
        plan = self._plan(conn)
        if plan is None:
            row = conn.execute(self.clause, dict(params)).first()
            return dict(row._mapping) if row is not None else None
        cursor = self._execute(conn, plan, params)
        try:
            row = cursor.fetchone()
            if row is None:
                return None
            results = plan.results if plan.results is not None else self._results(conn.dialect, plan, cursor)
        finally:
            cursor.close()
        values = list(row)
        for index, process in results:
            values[index] = process(values[index])
        return dict(zip(plan.columns, values, strict=True))

    def _plan(self, conn: Connection) -> _Plan | None:
        dialect = conn.dialect
        try:
            return self._plans[dialect]
        except KeyError:
            plan = self._plans[dialect] = self._compile(dialect)
            return plan

    def _compile(self, dialect: Dialect) -> _Plan | None:
        compiled = self.clause.compile(dialect=dialect, column_keys=self.columns)  # type: ignore[attr-defined]
        assert isinstance(compiled, SQLCompiler)
        if compiled.escaped_bind_names or "__[POSTCOMPILE" in compiled.string:
            return None
        binds = {name: param for param, name in compiled.bind_names.items()}
        return _Plan(
            sql=compiled.string,
            order=tuple(compiled.positiontup) if compiled.positiontup is not None else None,
            names=tuple(binds),
            fixed={name: param.effective_value for name, param in binds.items() if not param.required},
            bind=tuple(
                (name, process)
                for name, param in binds.items()
                if (process := param.type.dialect_impl(dialect).bind_processor(dialect)) is not None
            ),
            columns=tuple(column.key for column in getattr(self.clause, "selected_columns", ())),
        )

    def _results(self, dialect: Dialect, plan: _Plan, cursor: Any) -> tuple[tuple[int, Processor], ...]:
        """The result processors, as SQLAlchemy picks them: by type and the driver's type code."""
        columns = list(getattr(self.clause, "selected_columns", ()))
        found = []
        for index, (column, described) in enumerate(zip(columns, cursor.description, strict=True)):
            process = column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            if process is not None:
                found.append((index, process))
        plan.results = tuple(found)
        return plan.results

    @staticmethod
    def _execute(conn: Connection, plan: _Plan, params: Mapping[str, Any]) -> Any:
        if not conn.in_transaction():
            conn.begin()  # as `execute` would: `commit()` then commits, `close()` rolls back
        cursor = conn.connection.cursor()
        dbapi = conn.dialect.loaded_dbapi
        try:
            cursor.execute(plan.sql, plan.parameters(params))
        except dbapi.Error as exc:
            lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
            cursor.close()
            if lost:
                conn.invalidate(exc)  # as `execute` does: the pool will not hand this connection out again
            raise DBAPIError.instance(
                plan.sql,
                dict(params),
                exc,
                dbapi.Error,
                hide_parameters=conn.engine.hide_parameters,
                connection_invalidated=lost,
                dialect=conn.dialect,
            ) from exc
        return cursor
