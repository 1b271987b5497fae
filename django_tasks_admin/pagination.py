"""Keyset (cursor) pagination: no COUNT(*), and page 1,000 costs what page 1 costs.

A page is the ``per_page`` rows after (or before) a cursor: the sort column's
value and the primary key of the last (or first) row shown, encoded in the query
string.  NULLs sort last in both directions, on every database.
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


@dataclass(frozen=True, slots=True, kw_only=True)
class SortKey:
    """A column rows can be sorted by."""

    field: str
    nullable: bool = False
    kind: str = "str"  # "str", "int" or "datetime": how a cursor value is decoded


@dataclass(frozen=True, slots=True, kw_only=True)
class Sort:
    key: SortKey
    name: str
    descending: bool

    @property
    def param(self) -> str:
        return f"-{self.name}" if self.descending else self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    rows: list[Any]
    next_cursor: str | None
    previous_cursor: str | None

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None


def parse_sort(value: str | None, keys: dict[str, SortKey], default: str) -> Sort:
    """Return the sort named by ``value`` ("name" or "-name"), or the default."""
    for candidate in (value or "", default):
        name = candidate.lstrip("-")
        if name in keys:
            return Sort(key=keys[name], name=name, descending=candidate.startswith("-"))
    raise ValueError(f"Unknown default sort {default!r}")


class KeysetPaginator:
    """Cut an unordered queryset into keyset pages for one sort."""

    def __init__(self, queryset: QuerySet[Any], sort: Sort, per_page: int) -> None:
        self.queryset = queryset
        self.sort = sort
        self.per_page = per_page

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

    def page_queryset(self, *, after: str | None = None, before: str | None = None) -> Any:
        """The queryset of the page's rows plus one (to tell whether there is more)."""
        cursor = self.decode(before) if before else None
        if cursor is not None:
            return self.ordered(reverse=True).filter(self._before(*cursor))[: self.per_page + 1]
        cursor = self.decode(after) if after else None
        rows = self.ordered()
        if cursor is not None:
            rows = rows.filter(self._after(*cursor))
        return rows[: self.per_page + 1]

    def page(self, *, after: str | None = None, before: str | None = None) -> Page:
        """Return the page after the cursor ``after``, or before ``before``, or the first."""
        backwards = bool(before and self.decode(before) is not None)
        forwards_from = bool(not backwards and after and self.decode(after) is not None)
        rows = list(self.page_queryset(after=after, before=before))
        more = len(rows) > self.per_page
        rows = rows[: self.per_page]
        if backwards:
            rows.reverse()
            has_previous, has_next = more, True
        else:
            has_previous, has_next = forwards_from, more
        return Page(
            rows=rows,
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
