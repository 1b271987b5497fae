"""Keyset (cursor) pagination: no COUNT(*), and page 1,000 costs what page 1 costs.

A page is the ``per_page`` rows after (or before) a cursor: the sort column's
value and the primary key of the last (or first) row shown, encoded in the query
string.  NULLs sort last in both directions, on every database.

``KeysetPaginator`` is a django-tables2 ``paginator_class``: the table hands it its
rows, and the cursor and sort arrive as the paginator's keyword arguments.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import F, Q, QuerySet
from django.utils.dateparse import parse_datetime
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
    kind: str = "str"  # "str", "int" or "datetime": how a cursor value is decoded


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
        self.after = after
        self.before = before

    def ordered(self, *, reverse: bool = False) -> QuerySet[Any]:
        descending = self.sort.descending != reverse
        column = F(self.sort.key.field)
        if self.sort.key.nullable:
            # NULLs after every value when reading forwards, before them backwards.
            nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
            order = column.desc(**nulls) if descending else column.asc(**nulls)
        else:
            order = column.desc() if descending else column.asc()
        return self.queryset.order_by(order, "-pk" if descending else "pk")

    def page_queryset(self) -> QuerySet[Any]:
        """The queryset of the page's rows plus one (to tell whether there is more)."""
        cursor = self.decode(self.before) if self.before else None
        if cursor is not None:
            return self.ordered(reverse=True).filter(self._before(*cursor))[: self.per_page + 1]
        cursor = self.decode(self.after) if self.after else None
        rows = self.ordered()
        if cursor is not None:
            rows = rows.filter(self._after(*cursor))
        return rows[: self.per_page + 1]

    def page(self, number: int = 1) -> Page:
        """Return the page the cursor names: after ``after``, before ``before``, or the first.

        ``number`` is django-tables2's page number, which a keyset page has no use for.
        """
        backwards = bool(self.before and self.decode(self.before) is not None)
        forwards_from = bool(not backwards and self.after and self.decode(self.after) is not None)
        rows = list(self.page_queryset())
        more = len(rows) > self.per_page
        rows = rows[: self.per_page]
        if backwards:
            rows.reverse()
            has_previous, has_next = more, True
        else:
            has_previous, has_next = forwards_from, more
        return Page(
            rows=rows,
            object_list=BoundRows(data=rows, table=self.bound_rows.table)
            if self.bound_rows is not None
            else rows,
            next_cursor=self.encode(rows[-1]) if rows and has_next else None,
            previous_cursor=self.encode(rows[0]) if rows and has_previous else None,
        )

    # The cursor: [sort name, value, pk] as URL-safe base64 JSON.

    def encode(self, row: Any) -> str:
        value = getattr(row, self.sort.key.field)
        if isinstance(value, datetime):
            value = value.isoformat()
        raw = json.dumps([self.sort.name, value, str(row.pk)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, token: str) -> tuple[Any, UUID] | None:
        """Return (value, pk) from a cursor of this sort, or None if it isn't one."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            name, value, pk = json.loads(raw)
            if name != self.sort.name:
                return None
            if value is not None:
                value = self._decode_value(value)
            return value, UUID(str(pk))
        except (ValueError, TypeError, binascii.Error):
            return None

    def _decode_value(self, value: Any) -> Any:
        kind = self.sort.key.kind
        if kind == "datetime":
            parsed = parse_datetime(str(value))
            if parsed is None:
                raise ValueError(value)
            return parsed
        if kind == "int":
            return int(value)
        return str(value)

    def _after(self, value: Any, pk: UUID) -> Q:
        """Rows that come after (value, pk) in forward order."""
        field = self.sort.key.field
        beyond = "lt" if self.sort.descending else "gt"
        if value is None:  # already among the NULLs, which come last
            return Q(**{f"{field}__isnull": True, f"pk__{beyond}": pk})
        condition = Q(**{f"{field}__{beyond}": value}) | Q(**{field: value, f"pk__{beyond}": pk})
        if self.sort.key.nullable:
            condition |= Q(**{f"{field}__isnull": True})
        return condition

    def _before(self, value: Any, pk: UUID) -> Q:
        """Rows that come before (value, pk) in forward order."""
        field = self.sort.key.field
        ahead = "gt" if self.sort.descending else "lt"
        if value is None:
            return Q(**{f"{field}__isnull": False}) | Q(
                **{f"{field}__isnull": True, f"pk__{ahead}": pk}
            )
        return Q(**{f"{field}__{ahead}": value}) | Q(**{field: value, f"pk__{ahead}": pk})
