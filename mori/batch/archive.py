"""Which file of MORI's result belongs to which image of the order (pure functions).

MORI answers an order with one download: a zip of the processed files or, for a single-image
order, possibly the image itself (told apart by the zip magic bytes). Entries are matched to
the order's slots (position, file name) in rounds, each round only among what is still
unmatched:

1. index folder: ``{position}/{anything}`` (the folder right above the file; 0-based, or
   1-based when the names say so);
2. exact file name;
3. the file name's stem plus a suffix (``cat_protected.jpg`` for ``cat.jpg``), first with the
   same extension, then any extension (``cat_protected.png``); an entry naming several stems
   goes to the longest (``cat_2_x.jpg`` is ``cat_2.jpg``'s, not ``cat.jpg``'s);
4. archive order, only when nothing matched in rounds 1-3 and the counts agree.

Directories and junk (``__MACOSX/``, dot files, ``Thumbs.db``) are skipped. When a match is
ambiguous -- two images named ``cat.jpg`` and entries named by file name only, two entries for
one index -- each affected image gets its own ``OUTPUT_AMBIGUOUS`` error, never a guess; an
image nothing matched gets ``OUTPUT_MISSING``, and an archive that cannot be read
``OUTPUT_UNREADABLE``.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mori.batch.codes import ErrorCode

__all__ = ["OutputError", "SlotLike", "extract_outputs", "is_zip"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_SUFFIX_SEPARATORS = "_-. "


class SlotLike(Protocol):
    """An image's place in an order: its position and the file name sent to MORI."""

    @property
    def position(self) -> int: ...

    @property
    def file_name(self) -> str: ...


@dataclass(frozen=True)
class OutputError:
    """Why an image has no output in the result (``OUTPUT_MISSING``, ``OUTPUT_AMBIGUOUS``...)."""

    code: str
    message: str


@dataclass(frozen=True, eq=False)
class _Entry:
    """A file in the archive: its rank among the files, path, base name and zip record."""

    order: int
    path: str
    name: str
    info: zipfile.ZipInfo

    @property
    def folder(self) -> str:
        """The name of the folder right above the file (``""`` at the top level)."""
        return posixpath.basename(posixpath.dirname(self.path))


def is_zip(data: bytes) -> bool:
    """Whether ``data`` starts like a zip archive."""
    return data[:4] in _ZIP_MAGIC


def _is_junk(path: str) -> bool:
    """Metadata archivers add: macOS resource forks, dot files and folders, thumbnails."""
    *folders, base = path.split("/")
    return (
        "__MACOSX" in folders
        or base.startswith(".")
        or base.lower() in _JUNK_NAMES
        or any(f.startswith(".") and f not in (".", "..") for f in folders)
    )


def _entries(zf: zipfile.ZipFile) -> list[_Entry]:
    """The archive's files (no directories, no junk) in archive order."""
    found: list[_Entry] = []
    for info in zf.infolist():
        path = info.filename.replace("\\", "/").lstrip("/")
        while path.startswith("./"):
            path = path[2:]
        if info.is_dir() or not path or path.endswith("/") or _is_junk(path):
            continue
        found.append(_Entry(len(found), path, posixpath.basename(path), info))
    return found


def _split(name: str) -> tuple[str, str]:
    """A file name's stem and extension, both lower case."""
    stem, ext = posixpath.splitext(name)
    return stem.lower(), ext.lower()


def _exact(entry: str, slot: str) -> bool:
    return entry == slot


def _stem_match(entry: str, slot: str) -> bool:
    """``entry``'s stem is ``slot``'s, alone or followed by a separator and a suffix."""
    stem, base = _split(slot)[0], _split(entry)[0]
    if not stem or not base.startswith(stem):
        return False
    return len(base) == len(stem) or base[len(stem)] in _SUFFIX_SEPARATORS


def _stem_same_ext(entry: str, slot: str) -> bool:
    return _stem_match(entry, slot) and _split(entry)[1] == _split(slot)[1]


def _stem_length(slot: SlotLike) -> int:
    return len(_split(slot.file_name)[0])


class _Matcher:
    """The rounds of matching, with what each has decided so far."""

    def __init__(self, slots: Sequence[SlotLike], entries: list[_Entry]) -> None:
        self.slots = {s.position: s for s in slots}
        self.entries = entries
        self.matched: dict[int, _Entry] = {}
        self.ambiguous: dict[int, str] = {}
        self.used: set[int] = set()

    def open_slots(self) -> list[SlotLike]:
        """Slots neither matched nor found ambiguous, by position."""
        done = self.matched.keys() | self.ambiguous.keys()
        return [s for p, s in sorted(self.slots.items()) if p not in done]

    def open_entries(self) -> list[_Entry]:
        """Entries no slot has taken or contested."""
        return [e for e in self.entries if e.order not in self.used]

    def claim(self, position: int, entry: _Entry) -> None:
        self.matched[position] = entry
        self.used.add(entry.order)

    def doubt(self, position: int, why: str, entries: Iterable[_Entry]) -> None:
        """``position`` is ambiguous; the entries involved are taken out of later rounds."""
        self.ambiguous[position] = why
        self.used.update(e.order for e in entries)

    def by_index(self) -> None:
        """Round 1: entries in an ``{index}/`` folder."""
        indexed = [e for e in self.open_entries() if e.folder.isdigit()]
        if not indexed:
            return
        offset = self._index_base(indexed)
        groups: dict[int, list[_Entry]] = defaultdict(list)
        for entry in indexed:
            groups[int(entry.folder) - offset].append(entry)
        for position, group in groups.items():
            if position not in self.slots:
                continue
            if len(group) == 1:
                self.claim(position, group[0])
            else:
                self.doubt(position, f"{len(group)} files share its index folder", group)

    def _index_base(self, indexed: list[_Entry]) -> int:
        """1 when the folders count from 1: no ``0/`` and the names agree better so."""
        if any(int(e.folder) == 0 for e in indexed):
            return 0
        names = {p: s.file_name for p, s in self.slots.items()}

        def agreement(offset: int) -> int:
            slot_names = (names.get(int(e.folder) - offset) for e in indexed)
            return sum(
                1 for e, n in zip(indexed, slot_names, strict=True) if n and _stem_match(e.name, n)
            )

        return 1 if agreement(1) > agreement(0) else 0

    def by_name(self, same: Callable[[str, str], bool], what: str) -> None:
        """Rounds 2 and 3: an entry goes to the one open slot it names (the slot with the
        longest stem among those it names), if no other entry names that slot too."""
        slots = self.open_slots()
        wanted: dict[int, list[int]] = {}
        per_slot: dict[int, list[_Entry]] = defaultdict(list)
        for entry in self.open_entries():
            hits = [s for s in slots if same(entry.name, s.file_name)]
            if not hits:
                continue
            longest = max(_stem_length(s) for s in hits)
            wanted[entry.order] = [s.position for s in hits if _stem_length(s) == longest]
            for position in wanted[entry.order]:
                per_slot[position].append(entry)
        for position, found in per_slot.items():
            rivals = {p for e in found for p in wanted[e.order]}
            if len(found) == 1 and rivals == {position}:
                self.claim(position, found[0])
            elif len(found) > 1:
                self.doubt(position, f"{len(found)} result files match its {what}", found)
            else:
                self.doubt(position, f"other images' {what}s match the same result file", found)

    def by_order(self) -> None:
        """Round 4: archive order, when nothing else matched and the counts agree."""
        if self.matched or self.ambiguous or len(self.entries) != len(self.slots):
            return
        for slot, entry in zip(self.open_slots(), self.entries, strict=True):
            self.claim(slot.position, entry)


def _read(zf: zipfile.ZipFile, entry: _Entry) -> bytes | OutputError:
    """An entry's bytes, or why the archive cannot give them."""
    try:
        return zf.read(entry.info)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        return OutputError(ErrorCode.OUTPUT_UNREADABLE, f"its result file cannot be read ({exc})")


def extract_outputs(archive: bytes, slots: Iterable[SlotLike]) -> dict[int, bytes | OutputError]:
    """Each slot's output by position: the matching file's bytes, or why there is none."""
    slots = list(slots)
    if not is_zip(archive):
        if len(slots) == 1:
            return {slots[0].position: archive}
        message = f"MORI's result is not a zip archive, and the order has {len(slots)} images"
        return {s.position: OutputError(ErrorCode.OUTPUT_MISSING, message) for s in slots}
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        error = OutputError(
            ErrorCode.OUTPUT_UNREADABLE, f"MORI's result archive cannot be opened ({exc})"
        )
        return {s.position: error for s in slots}
    with zf:
        matcher = _Matcher(slots, _entries(zf))
        matcher.by_index()
        matcher.by_name(_exact, "file name")
        matcher.by_name(_stem_same_ext, "file name")
        matcher.by_name(_stem_match, "file name's stem")
        matcher.by_order()
        out: dict[int, bytes | OutputError] = {}
        for slot in slots:
            if (entry := matcher.matched.get(slot.position)) is not None:
                out[slot.position] = _read(zf, entry)
            elif (why := matcher.ambiguous.get(slot.position)) is not None:
                message = f"cannot tell which result file is {slot.file_name}: {why}"
                out[slot.position] = OutputError(ErrorCode.OUTPUT_AMBIGUOUS, message)
            else:
                message = "MORI's result archive has no file for it"
                out[slot.position] = OutputError(ErrorCode.OUTPUT_MISSING, message)
        return out
