"""Parse a formatted Python traceback into its chain of exceptions and frames.

The stored traceback is the text of ``traceback.format_exception()``: one or more
sections joined by "During handling..." / "The above exception was the direct
cause..." lines.  Frames in the project's code are told apart from library frames
(site-packages, the standard library, Django, django_tasks itself), which the
detail page folds away.
"""

from __future__ import annotations

import os
import re
import sysconfig
from dataclasses import dataclass, field
from functools import cache

from . import conf

_FRAME = re.compile(r'^  File "(?P<path>.*)", line (?P<lineno>\d+)(?:, in (?P<func>.*))?$')
_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_HEADER = "Traceback (most recent call last):"


@dataclass(slots=True, kw_only=True)
class Frame:
    path: str
    lineno: int
    func: str
    code: str
    library: bool


@dataclass(slots=True, kw_only=True)
class FrameGroup:
    """Consecutive frames that are all project frames, or all library frames."""

    library: bool
    frames: list[Frame] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class Section:
    """One exception of the chain: how it relates to the previous one, frames, message."""

    cause: str  # "" for the first exception
    frames: list[Frame] = field(default_factory=list)
    exception: str = ""
    other: list[str] = field(default_factory=list)  # lines we could not classify

    @property
    def groups(self) -> list[FrameGroup]:
        groups: list[FrameGroup] = []
        for frame in self.frames:
            if not groups or groups[-1].library != frame.library:
                groups.append(FrameGroup(library=frame.library))
            groups[-1].frames.append(frame)
        return groups

    @property
    def exception_class(self) -> str:
        head = self.exception.split(":", 1)[0].strip()
        return head if head and " " not in head else ""


@cache
def _library_prefixes() -> tuple[str, ...]:
    import asgiref
    import django

    import django_tasks

    prefixes = [
        os.path.dirname(django.__file__) + os.sep,
        os.path.dirname(asgiref.__file__) + os.sep,
        os.path.dirname(django_tasks.__file__) + os.sep,
    ]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            prefixes.append(path.rstrip(os.sep) + os.sep)
    return tuple(prefixes)


def is_library_path(path: str) -> bool:
    """Return whether a frame's file belongs to a library rather than the project."""
    if any(marker in path for marker in conf.get("LIBRARY_PATH_MARKERS")):
        return True
    return path.startswith(_library_prefixes())


def parse_traceback(text: str | None) -> list[Section]:
    """Split a formatted traceback into sections, oldest exception first."""
    if not text:
        return []
    sections = [Section(cause="")]
    lines = text.rstrip("\n").split("\n")
    current: Frame | None = None
    for line in lines:
        section = sections[-1]
        stripped = line.strip()
        if stripped in _CHAIN:
            sections.append(Section(cause=stripped))
            current = None
            continue
        if stripped == _HEADER or (not stripped and not section.exception):
            continue
        match = _FRAME.match(line)
        if match and not section.exception:
            current = Frame(
                path=match["path"],
                lineno=int(match["lineno"]),
                func=match["func"] or "",
                code="",
                library=is_library_path(match["path"]),
            )
            section.frames.append(current)
            continue
        if current is not None and line.startswith("    ") and not section.exception:
            current.code = f"{current.code}\n{line[4:]}" if current.code else line[4:]
            continue
        if line.startswith("  ") and not section.exception:
            # "[Previous line repeated 996 more times]" and the like.
            section.other.append(stripped)
            continue
        current = None
        section.exception = f"{section.exception}\n{line}" if section.exception else line
    for section in sections:
        section.exception = section.exception.strip("\n")
    return [s for s in sections if s.frames or s.exception or s.other]
