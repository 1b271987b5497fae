"""Keyset (cursor) pagination: no COUNT(*), and page 1,000 costs what page 1 costs.

A page is the ``per_page`` rows after (or before) a cursor: the sort's column
values and the primary key of the last (or first) row shown, encoded in the query
string.  The cursor is applied as a row-value comparison, ``(col, ..., id) < (%s,
..., %s)``, which the database reads as a range of an index on those columns: a
deep page reads no more rows than the first.  NULLs sort last in both directions,
on every database: a nullable sort column is read in two ranges (its values, then
its NULLs), each served by the same index.

``KeysetPaginator`` is a django-tables2 ``paginator_class``: the table hands it its
rows, and the cursor and sort arrive as the paginator's keyword arguments.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Expression, F, Field, OrderBy, QuerySet, Value
from django.db.models.sql.compiler import SQLCompiler
from django_tables2.rows import BoundRows

# A page never holds more rows than this, whatever ?per_page= asks for.
MAX_PER_PAGE = 500


def page_size(value: int) -> int:
    """The rows a page holds when ``value`` are asked for: at least 1, at most MAX_PER_PAGE."""
    return max(1, min(value, MAX_PER_PAGE))


@dataclass(frozen=True, slots=True, kw_only=True)
class SortKey:
    """A column rows can be sorted by."""

    field: str
    nullable: bool = False
    # Non-null columns that order rows with equal ``field`` values, before the primary key.
    then: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column of the order: an index on them (the pk may be left out) serves it."""
        return (self.field, *self.then, "pk")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sort:
    """One sort of the list: a column name, its key, and the direction."""

    key: SortKey
    name: str
    descending: bool

    @property
    def param(self) -> str:
        return f"-{self.name}" if self.descending else self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """The rows of one page, and the cursors of its neighbours."""

    rows: list[Any]
    object_list: Any  # what a table iterates: its BoundRows, else the rows
    next_cursor: str | None
    previous_cursor: str | None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None


class RowCompare(Expression):
    """``(a, b, ...) < (x, y, ...)``: a row-value comparison, read as a range of an index on (a, b, ...)."""

    conditional = True

    def __init__(self, left: Sequence[Any], op: str, right: Sequence[Any]) -> None:
        if op not in ("<", ">") or len(left) != len(right) or not left:
            raise ValueError(f"RowCompare takes two rows of the same length and < or >, not {op!r}")
        super().__init__(output_field=BooleanField())
        self.left = list(left)
        self.right = list(right)
        self.op = op

    def get_source_expressions(self) -> list[Any]:
        return [*self.left, *self.right]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        n = len(self.left)
        self.left, self.right = list(exprs[:n]), list(exprs[n:])

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        sqls: list[str] = []
        params: list[Any] = []
        for expression in (*self.left, *self.right):
            sql, expression_params = compiler.compile(expression)
            sqls.append(sql)
            params.extend(expression_params)
        n = len(self.left)
        return f"({', '.join(sqls[:n])}) {self.op} ({', '.join(sqls[n:])})", params


class KeysetPaginator:
    """Cut a queryset (or a django-tables2 table's rows) into keyset pages for one sort."""

    def __init__(
        self,
        object_list: QuerySet[Any] | BoundRows,
        per_page: int,
        *,
        sort: Sort,
        after: str | None = None,
        before: str | None = None,
    ) -> None:
        # django-tables2 passes its BoundRows; a keyset page filters the queryset they wrap.
        self.bound_rows = object_list if isinstance(object_list, BoundRows) else None
        self.queryset: QuerySet[Any] = (
            object_list.data.data if isinstance(object_list, BoundRows) else object_list
        )
        self.per_page = page_size(int(per_page))
        self.sort = sort
        # A cursor of another sort, or garbage, means the first page.
        self.before = self.decode(before) if before else None
        self.after = self.decode(after) if after and self.before is None else None

    @property
    def backwards(self) -> bool:
        return self.before is not None

    def ordering(
        self, *, reverse: bool = False, columns: Sequence[str] | None = None
    ) -> list[OrderBy]:
        """ORDER BY of the sort (reversed: read backwards), on ``columns`` (default: all).

        No NULLS FIRST/LAST: each range holds either no NULL or only NULLs, and the
        databases' default NULL placement is the one their indexes are read in.
        """
        descending = self.sort.descending != reverse
        return [F(c).desc() if descending else F(c).asc() for c in columns or self.sort.key.columns]

    def _beyond(
        self, values: Sequence[Any], *, reverse: bool, columns: Sequence[str]
    ) -> RowCompare:
        """Rows past ``values`` (of ``columns``), reading forwards (or backwards with ``reverse``)."""
        descending = self.sort.descending != reverse
        fields = [self._field(c) for c in columns]
        return RowCompare(
            [F(c) for c in columns],
            "<" if descending else ">",
            [Value(v, output_field=f) for v, f in zip(values, fields, strict=True)],
        )

    def ranges(self) -> list[QuerySet[Any]]:
        """The ordered querysets this page reads, in turn, until it has its rows (one or two).

        Each is a range of one index: the rows past the cursor with the cursor's
        leading value, then those beyond it; or a nullable column's values, then its NULLs.
        """
        key = self.sort.key
        cursor = self.before if self.backwards else self.after
        reverse = self.backwards
        columns = key.columns
        order = self.ordering(reverse=reverse)
        if not key.nullable and key.then and cursor is not None:
            # A column of few values (status, queue, task) is read as two ranges: the rest
            # of the cursor's value, then the values beyond it.  One comparison of the
            # whole row would be as exact, but the planner estimates it by its first
            # column alone ("status < 'COMPLETE'": no rows) and may then scan the table.
            descending = self.sort.descending != reverse
            same = self.queryset.filter(**{key.field: cursor[0]}).filter(
                self._beyond(cursor[1:], reverse=reverse, columns=columns[1:])
            )
            beyond = self.queryset.filter(
                **{f"{key.field}__{'lt' if descending else 'gt'}": cursor[0]}
            )
            return [same.order_by(*order), beyond.order_by(*order)]
        if not key.nullable:
            rows = self.queryset
            if cursor is not None:
                rows = rows.filter(self._beyond(cursor, reverse=reverse, columns=columns))
            return [rows.order_by(*order)]
        # NULLs come last reading forwards, first reading backwards.
        present = self.queryset.filter(**{f"{key.field}__isnull": False})
        missing = self.queryset.filter(**{f"{key.field}__isnull": True})
        if cursor is not None and cursor[0] is None:
            missing = missing.filter(self._beyond(cursor[1:], reverse=reverse, columns=columns[1:]))
            if not reverse:
                present = present.none()
        elif cursor is not None:
            present = present.filter(self._beyond(cursor, reverse=reverse, columns=columns))
            if reverse:
                missing = missing.none()
        present = present.order_by(*order)
        # The NULLs' order is the rest of the columns' (ordering by the column too lets the
        # database read them straight from the same index).
        missing = missing.order_by(*order)
        ranges = [missing, present] if reverse else [present, missing]
        return [r for r in ranges if not r.query.is_empty()]

    def fetch(self, shape: Callable[[QuerySet[Any]], QuerySet[Any]] | None = None) -> list[Any]:
        """The page's rows plus one (to tell whether there is more), in reading order.

        ``shape`` turns each range's queryset into what to read (e.g. ``values_list``).
        """
        rows: list[Any] = []
        for queryset in self.ranges():
            want = self.per_page + 1 - len(rows)
            if want <= 0:
                break
            rows += list((shape(queryset) if shape else queryset)[:want])
        return rows

    def page(self, number: int = 1) -> Page:
        """Return the page the cursor names: after ``after``, before ``before``, or the first.

        ``number`` is django-tables2's page number, which a keyset page has no use for.
        """
        rows = self.fetch()
        more = len(rows) > self.per_page
        rows = rows[: self.per_page]
        if self.backwards:
            rows.reverse()
            has_previous, has_next = more, True
        else:
            has_previous, has_next = self.after is not None, more
        return Page(
            rows=rows,
            object_list=type(self.bound_rows)(data=rows, table=self.bound_rows.table)
            if self.bound_rows is not None
            else rows,
            next_cursor=self.encode(rows[-1]) if rows and has_next else None,
            previous_cursor=self.encode(rows[0]) if rows and has_previous else None,
        )

    # The cursor: [sort name, [values], pk] as URL-safe base64 JSON.

    def _field(self, name: str) -> Field[Any, Any]:
        meta = self.queryset.model._meta
        field = meta.pk if name == "pk" else meta.get_field(name)
        assert isinstance(field, Field), name
        return field

    def encode(self, row: Any) -> str:
        values = []
        for name in self.sort.key.columns[:-1]:
            value = getattr(row, name)
            values.append(value.isoformat() if isinstance(value, datetime) else value)
        raw = json.dumps([self.sort.name, values, str(row.pk)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, token: str) -> tuple[Any, ...] | None:
        """Return the cursor's column values (pk last), or None if it isn't a cursor of this sort."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            name, values, pk = json.loads(raw)
            columns = self.sort.key.columns
            if name != self.sort.name or not isinstance(values, list):
                return None
            if len(values) != len(columns) - 1 or pk is None:
                return None
            decoded = []
            for column, value in zip(columns, [*values, pk], strict=True):
                if value is None and not (column == self.sort.key.field and self.sort.key.nullable):
                    return None
                decoded.append(None if value is None else self._field(column).to_python(value))
            return tuple(decoded)
        except (ValueError, TypeError, binascii.Error, ValidationError):
            return None
