"""Iterate the MIDI files of a corpus: a folder (recursive) or a .tar.gz/.tgz/.tar/.zip archive.

``iter_midi`` gives files sorted by relative path so that every run sees the same order,
whatever the file system or the archive's member order. Archives are never extracted to
disk; ``iter_files`` streams them in member order for callers (``pipeline.extract``)
that sort their own results, so that parsing overlaps reading.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

MIDI_SUFFIXES = (".mid", ".midi")
# Corpora whose notes may be shown in a committed figure or page (their licences allow it: Freedoom
# BSD-3-Clause, Groove CC-BY 4.0); any other corpus (the Ultimate MIDI collection) is read, never shown.
SHAREABLE_CORPORA = ("freedoom", "groove")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def is_midi(name: str) -> bool:
    return name.lower().endswith(MIDI_SUFFIXES)


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def folder_genre(rel_path: str) -> str:
    """The first folder of a relative path ('' for a file at the corpus root)."""
    top, sep, _ = rel_path.partition("/")
    return top if sep else ""


def clean_name(name: str) -> str:
    """An archive member name as a plain relative path (``./a//b.mid`` -> ``a/b.mid``)."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def strip_common_top(names: list[str]) -> tuple[list[str], str]:
    """Drop the single top folder every name starts with (``ultimate-midi/rock/x.mid``
    -> ``rock/x.mid``), the usual shape of an archive of one folder."""
    tops = {name.partition("/")[0] if "/" in name else None for name in names}
    if len(tops) != 1 or None in tops:
        return names, ""
    top = tops.pop()
    return [name[len(top) + 1 :] for name in names], top


def unwrap_rmid(data: bytes) -> bytes:
    """The standard MIDI file inside a RIFF ``RMID`` wrapper (a Windows format that some
    collections name ``.mid``); other bytes are returned unchanged."""
    if data[:4] != b"RIFF" or data[8:12] != b"RMID":
        return data
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"data":
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return data


def _folder_files(root: Path) -> Iterator[tuple[str, bytes]]:
    rels = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            rels.append((Path(dirpath) / name).relative_to(root).as_posix())
    for rel in sorted(rels):
        yield rel, (root / rel).read_bytes() if is_midi(rel) else b""


def _tar_files(path: Path) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(path, "r|*") as tar:  # a stream: members are read once, in archive order
        for member in tar:
            if member.isfile():
                name = clean_name(member.name)
                yield name, tar.extractfile(member).read() if is_midi(name) else b""


def _zip_files(path: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                yield clean_name(info.filename), zf.read(info) if is_midi(info.filename) else b""


def iter_files(root: str | Path) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every file of a corpus in storage order (sorted for a folder,
    member order for an archive), streamed; non-MIDI files come with empty bytes. Names
    of archive members still carry the archive's top folder: see ``relative_names``."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"corpus not found: {root}")
    if root.is_dir():
        return _folder_files(root)
    if is_archive(root):
        return _zip_files(root) if root.name.lower().endswith(".zip") else _tar_files(root)
    raise ValueError(f"corpus must be a folder or a {'/'.join(ARCHIVE_SUFFIXES)} archive: {root}")


def relative_names(root: str | Path, names: list[str]) -> list[str]:
    """Paths relative to the corpus root of all the names ``iter_files`` gave."""
    return strip_common_top(names)[0] if is_archive(root) and not Path(root).is_dir() else names


def iter_midi(root: str | Path, stats: dict | None = None) -> Iterator[tuple[str, bytes, str]]:
    """Yield ``(relative path, bytes, folder genre)`` for every MIDI file (.mid/.midi, any
    case) of a folder or archive, sorted by relative path. Other files are skipped and
    counted in ``stats["non_midi_skipped"]``. An archive is held in memory (sorting needs
    its last member); ``pipeline.extract`` streams ``iter_files`` instead."""
    stats = {} if stats is None else stats
    stats.setdefault("non_midi_skipped", 0)
    files = iter_files(root)
    if is_archive(root) and not Path(root).is_dir():
        raw = list(files)
        files = sorted(zip(relative_names(root, [name for name, _ in raw]), (data for _, data in raw)))
    for rel, data in files:
        if not is_midi(rel):
            stats["non_midi_skipped"] += 1
            continue
        yield rel, data, folder_genre(rel)
