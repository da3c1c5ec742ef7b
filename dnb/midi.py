"""Reading MIDI bytes, robustly: the one reader of ``pipeline.extract`` and of ``dnb generate`` / ``dnb serve``.

``read_midi`` tries, in order, and says which step worked (``READS``):

1. ``plain``: symusic on the bytes (a RIFF ``RMID`` wrapper is unwrapped first);
2. ``sanitized``: symusic's sanitizer, which clamps out-of-range data bytes (a velocity
   of 180, say): the rest of such files is sound;
3. ``repaired`` (only with ``repair=True``): a truncated or damaged file is rebuilt from
   what is readable: every ``MTrk`` chunk is cut to the bytes present and to its last
   complete event, closed with an end-of-track event, the chunk lengths and the track
   count of the header are re-written, and the result is parsed with the sanitizer.

Why a repair step at all: files cut short by a download or a broken disk are common
in scraped collections, and their first bars are fine. The pipeline reads with
``repair=False`` (a truncated song's bass or drums may stop mid-song, which would
make half-empty training pairs, and its corpus stays what it was); a user's file is
read with the repair, since some bass is better than none.
"""

from __future__ import annotations

import struct

from dnb.corpus import unwrap_rmid

READS = ("plain", "sanitized", "repaired")
END_OF_TRACK = b"\x00\xff\x2f\x00"


class Unreadable(ValueError):
    """No step of ``read_midi`` could parse the bytes; the message is one line."""


def _vlq(data: bytes, pos: int) -> tuple[int, int] | None:
    """(value, next position) of a variable-length quantity, or None when it is cut or longer than 4 bytes."""
    value = 0
    for i in range(4):
        if pos + i >= len(data):
            return None
        byte = data[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    return None


def complete_events(events: bytes) -> tuple[int, bool]:
    """(length of the prefix made of whole events, whether it ends with end-of-track).

    Walks delta times, running status, meta and sysex events; stops at the first cut
    or malformed event. Lenient: a meta or sysex event keeps the running status, as
    most readers do."""
    pos, status, good = 0, None, 0
    while pos < len(events):
        delta = _vlq(events, pos)
        if delta is None:
            break
        pos = delta[1]
        if pos >= len(events):
            break
        byte = events[pos]
        if byte >= 0x80:
            pos += 1
            if byte == 0xFF:
                if pos >= len(events):
                    break
                kind = events[pos]
                length = _vlq(events, pos + 1)
                if length is None or length[1] + length[0] > len(events):
                    break
                pos = length[1] + length[0]
                if kind == 0x2F:
                    return pos, True
                good = pos
                continue
            if byte in (0xF0, 0xF7):
                length = _vlq(events, pos)
                if length is None or length[1] + length[0] > len(events):
                    break
                pos = good = length[1] + length[0]
                continue
            if byte > 0xF0:  # system common / real-time bytes have no place in a file
                break
            status = byte
        elif status is None:  # a data byte with no status to run on
            break
        size = 1 if (status & 0xF0) in (0xC0, 0xD0) else 2
        if pos + size > len(events):
            break
        pos = good = pos + size
    return good, False


def repair_truncated(data: bytes) -> bytes | None:
    """The readable part of a damaged standard MIDI file as a well-formed file, or None
    when not even the header is there (or nothing would change)."""
    data = unwrap_rmid(data)
    if len(data) < 14 or data[:4] != b"MThd":
        return None
    header_len = struct.unpack(">I", data[4:8])[0]
    fmt, _, division = struct.unpack(">HHH", data[8:14])
    pos = 8 + max(header_len, 6)
    tracks = []
    while pos + 8 <= len(data):
        kind, length = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + length]  # cut to what is present
        pos += 8 + length
        if kind != b"MTrk":
            continue
        good, closed = complete_events(body)
        tracks.append(body[:good] + (b"" if closed else END_OF_TRACK))
    if not tracks:
        return None
    fmt = 1 if fmt == 0 and len(tracks) > 1 else min(fmt, 2)
    out = b"MThd" + struct.pack(">IHHH", 6, fmt, len(tracks), division)
    out += b"".join(b"MTrk" + struct.pack(">I", len(t)) + t for t in tracks)
    return None if out == data else out


def read_midi(data: bytes, repair: bool = True):
    """(symusic ``Score``, how it was read: one of ``READS``); ``Unreadable`` when nothing works."""
    import symusic

    data = unwrap_rmid(data)
    first = None
    for how, sanitize in (("plain", False), ("sanitized", True)):
        try:
            return symusic.Score.from_midi(data, sanitize_data=sanitize), how
        except Exception as err:  # symusic raises RuntimeError on malformed files; catch all to be safe
            first = first or err
    fixed = repair_truncated(data) if repair else None
    if fixed is not None:
        try:
            return symusic.Score.from_midi(fixed, sanitize_data=True), "repaired"
        except Exception:
            pass
    message = " ".join(str(first).split())[:120] or type(first).__name__
    raise Unreadable(message)
