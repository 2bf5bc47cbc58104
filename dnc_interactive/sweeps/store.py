"""The results store of a sweep: an append-only CSV file or a ``.parquet`` directory of
part files, and crash repair (:func:`load_results`).

The results store is append-only: a CSV file gets one appended block of rows per finished
chunk, a Parquet "file" is a directory of part files (part-000000.parquet, ...), one per
chunk, each written to a hidden temporary name and renamed into place. Nothing is ever
rewritten, so a crash or a kill can damage at most the last block: load_results() finds it,
names it, and with repair=True (what sweep() does) drops only that broken tail, with a
message, keeping the dropped bytes aside. Damage anywhere else is refused with the fix. A
lock file (results.csv.lock, an OS lock released even on SIGKILL) keeps a second sweep from
writing the same file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from dnc_interactive.sweeps.columns import _STR_COLUMNS, _arrow_table, _columns, _tidy
from dnc_interactive.sweeps.errors import ResultsFileError, ResultsRepaired
from dnc_interactive.sweeps.lock import _ResultsLock
from dnc_interactive.validation import ParameterError

__all__ = ["load_results"]


def _check_out(out: str | os.PathLike | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"out={str(out)!r} is not valid: expected a .parquet or .csv file")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:  # pragma: no cover - pyarrow is installed in dev and CI
            raise ValueError(
                f"out={str(out)!r} needs pyarrow (pip install 'dnc-interactive[parquet]'),"
                " or use a .csv file"
            ) from None
    elif path.is_dir():
        raise ValueError(f"out={str(out)!r} is not valid: it is a directory, not a .csv file")
    return path


_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


# --------------------------------------------------------------------- the stores
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _aside(path: Path, suffix: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return path.with_name(f".{path.name}.{suffix}-{stamp}-{os.getpid()}")


class _CsvStore:
    """Append-only CSV: a header line, then one appended block of complete lines per chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._header: list[str] | None = None

    # a scan: (frame-ready bytes end, rows, problem) with problem None or
    # (line number, byte offset, reason, is_tail)
    def _scan(self) -> tuple[list[str] | None, int, int, tuple[int, int, str, bool] | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, 0, 0, None
        if not data:
            return None, 0, 0, None
        lines = data.split(b"\n")
        ended = data.endswith(b"\n")
        if ended:
            lines = lines[:-1]
        header: list[str] | None = None
        offset = 0
        good_end = 0
        rows = 0
        key_at = -1
        for i, raw in enumerate(lines):
            lineno = i + 1
            last = i == len(lines) - 1
            complete = ended or not last
            reason = None
            try:
                fields = next(csv.reader([raw.decode("utf-8")]))
            except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
                fields = None
                reason = f"unreadable ({type(exc).__name__})"
            if header is None:
                if not complete:
                    reason = reason or "cut off inside the header line"
                elif fields is not None and "key" in fields and "config_json" in fields:
                    header = fields  # the current layout, or an older one (see prepare())
                    key_at = fields.index("key")
                else:
                    raise ResultsFileError(
                        self.path,
                        f"{self.path} is not a sweep results file (its first line is not the"
                        " header sweep() writes, with 'key' and 'config_json' columns)."
                        " Fix: give the sweep another out= / --out, or move this file aside.",
                    )
            elif fields is not None and len(fields) != len(header):
                reason = f"{len(fields)} fields instead of {len(header)}"
            elif fields is not None and not _is_key(fields[key_at]):
                reason = f"no configuration key ({fields[key_at][:20]!r})"
            if reason is None and not complete:
                reason = "no end of line"
            if reason is not None:
                tail = last
                return header, good_end, rows, (lineno, offset, reason, tail)
            offset += len(raw) + 1
            good_end = offset
            if lineno > 1:
                rows += 1
        return header, good_end, rows, None

    def read(self, repair: bool, writer_active: bool) -> pd.DataFrame:
        header, good_end, rows, problem = self._scan()
        self._header = header
        if problem is not None:
            lineno, offset, reason, tail = problem
            size = self.path.stat().st_size
            if not tail:
                raise ResultsFileError(
                    self.path,
                    f"{self.path}: line {lineno} is broken ({reason}) but lines after it are"
                    " intact, so this is not a write cut off by a crash and nothing is dropped"
                    f" automatically. Fix: delete line {lineno} by hand (its configurations"
                    " will be recomputed), or move the file aside and start a new one.",
                )
            if writer_active:  # a writer is appending right now: its last line is unfinished
                return self._frame(good_end)
            if not repair:
                raise ResultsFileError(
                    self.path,
                    f"{self.path}: the last line ({lineno}) is broken ({reason}): a write was"
                    " cut off (a crash or a kill). Fix: run the sweep again with the same"
                    " out= / --out (it drops that line, with a message, and recomputes its"
                    " configuration), or call load_results(path, repair=True).",
                )
            aside = _aside(self.path, "broken-tail")
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                aside.write_bytes(fh.read())
            with open(self.path, "r+b") as fh:
                fh.truncate(offset)
                fh.flush()
                os.fsync(fh.fileno())
            what = "header line" if header is None else f"line {lineno}"
            warnings.warn(
                f"{self.path}: dropped the broken {what} ({size - offset} bytes, {reason}: a"
                f" write cut off by a crash or kill); kept {rows} rows. The dropped bytes are in"
                f" {aside.name}; the configurations they held will be recomputed.",
                ResultsRepaired,
                stacklevel=4,
            )
            good_end = offset
            self._header = header if header is not None and offset > 0 else None
        return self._frame(good_end)

    def _frame(self, end: int) -> pd.DataFrame:
        if end == 0:
            return pd.DataFrame(columns=_columns())
        with open(self.path, "rb") as fh:
            data = fh.read(end)
        text = dict.fromkeys(_STR_COLUMNS & set(self._header or _columns()), str)  # "12e4.." keys
        # pandas 3: round-trip precision is the default
        exact: dict[str, Any] = {} if _PANDAS_MAJOR >= 3 else {"float_precision": "round_trip"}
        return pd.read_csv(io.BytesIO(data), dtype=text, **exact)

    def prepare(self) -> None:
        """Writer start (lock held, after :meth:`read`): a file written with another column
        layout (an older version's) is rewritten once in the current one, so that appended
        rows line up; its rows are kept, new columns are empty."""
        old = self._header
        if old is None or old == _columns():
            return
        frame = self._frame(self.path.stat().st_size)
        added = [c for c in _columns() if c not in old]
        dropped = [c for c in old if c not in _columns()]
        tmp = self.path.with_name(f".{self.path.name}.upgrade-{os.getpid()}")
        try:
            frame.reindex(columns=_columns()).to_csv(tmp, index=False, lineterminator="\n")
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._header = _columns()
        warnings.warn(
            f"{self.path}: rewrote it once in the current column layout (added {added or 'none'},"
            f" dropped {dropped or 'none'}); its {len(frame)} rows are kept.",
            ResultsRepaired,
            stacklevel=4,
        )

    def append(self, frame: pd.DataFrame) -> None:
        frame = frame.reindex(columns=_columns())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            text = frame.to_csv(index=False, header=start == 0, lineterminator="\n")
            payload = memoryview(text.encode("utf-8"))
            try:
                while payload:
                    n = os.write(fd, payload)
                    payload = payload[n:]
                os.fsync(fd)
            except BaseException:  # Ctrl-C or a full disk mid-write: leave no partial rows
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


def _is_key(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


_PART = re.compile(r"^part-(\d{6,})\.parquet$")


class _ParquetStore:
    """A directory of part files, one per finished chunk (a single legacy file is read too,
    and turned into the directory's first part when a sweep appends to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next = 0

    def _migrating(self) -> Path:
        return self.path.with_name(f".{self.path.name}.migrating")

    def _parts(self) -> list[tuple[int, Path]]:
        parts = []
        foreign = []
        for p in self.path.iterdir():
            if p.name.startswith((".", "_")):
                continue
            m = _PART.match(p.name)
            if m and p.is_file():
                parts.append((int(m.group(1)), p))
            else:
                foreign.append(p.name)
        if foreign:
            raise ResultsFileError(
                self.path,
                f"{self.path} is a directory but not a sweep results directory: it holds"
                f" {sorted(foreign)[:3]} besides part files. Fix: give the sweep another out= /"
                " --out (a new .parquet name).",
            )
        return sorted(parts)

    @staticmethod
    def _read_part(path: Path) -> pd.DataFrame:
        import pyarrow.parquet as pq

        frame = pq.read_table(path).to_pandas()
        if "key" not in frame.columns or not all(_is_key(str(k)) for k in frame["key"]):
            raise ValueError("no configuration keys (not a sweep results part)")
        return frame

    def read(self, repair: bool, writer_active: bool) -> pd.DataFrame:
        if not self.path.exists() and self._migrating().is_dir():
            os.replace(self._migrating(), self.path)  # finish a migration a crash interrupted
        if not self.path.exists():
            return pd.DataFrame(columns=_columns())
        if self.path.is_file():  # a single Parquet file (written before the store appended)
            try:
                return self._read_part(self.path)
            except Exception as exc:
                raise ResultsFileError(
                    self.path,
                    f"{self.path} is not a readable sweep results file ({type(exc).__name__}:"
                    f" {str(exc)[:120]}); a single Parquet file cannot be partly recovered."
                    " Fix: move it aside (its configurations will be recomputed) or restore it"
                    " from a copy.",
                ) from None
        parts = self._parts()
        frames: list[pd.DataFrame] = []
        broken: list[tuple[int, Path, str]] = []
        for seq, p in parts:
            try:
                frames.append(self._read_part(p))
            except Exception as exc:
                broken.append((seq, p, f"{type(exc).__name__}: {str(exc)[:120]}"))
        self._next = parts[-1][0] + 1 if parts else 0
        if broken:
            first_bad = broken[0][0]
            if any(seq > first_bad for seq, _ in parts if all(seq != b[0] for b in broken)):
                seq, p, why = broken[0]
                raise ResultsFileError(
                    p,
                    f"{p} is broken ({why}) but later parts are intact, so this is not a write"
                    " cut off by a crash and nothing is dropped automatically. Fix: move that"
                    " part file out of the directory (its configurations will be recomputed).",
                )
            if not writer_active:
                names = ", ".join(p.name for _, p, _ in broken)
                if not repair:
                    raise ResultsFileError(
                        broken[0][1],
                        f"{self.path}: the last part(s) {names} are broken ({broken[0][2]}): a"
                        " write was cut off (a crash or a kill). Fix: run the sweep again with"
                        " the same out= / --out (it sets them aside, with a message, and"
                        " recomputes their configurations), or call load_results(path,"
                        " repair=True).",
                    )
                for _, p, _ in broken:
                    os.replace(p, p.with_name(f".{p.name}.broken-{os.getpid()}"))
                warnings.warn(
                    f"{self.path}: set aside the broken last part(s) {names} ({broken[0][2]}:"
                    " a write cut off by a crash or kill) as hidden .broken files; kept"
                    f" {sum(len(f) for f in frames)} rows. Their configurations will be"
                    " recomputed.",
                    ResultsRepaired,
                    stacklevel=4,
                )
        if not frames:
            return pd.DataFrame(columns=_columns())
        return pd.concat(frames, ignore_index=True)

    def prepare(self) -> None:
        """Writer start (lock held): finish or start the migration of a single-file results
        file into the directory layout, and remove temporary files of a crashed writer."""
        mig = self._migrating()
        if not self.path.exists() and mig.is_dir():
            os.replace(mig, self.path)
        if self.path.is_file():
            mig.mkdir(exist_ok=True)
            os.replace(self.path, mig / "part-000000.parquet")
            os.replace(mig, self.path)
            self._next = 1
        self.path.mkdir(parents=True, exist_ok=True)
        for p in self.path.glob(".part-*.tmp"):
            p.unlink(missing_ok=True)
        parts = self._parts()
        self._next = max(self._next, parts[-1][0] + 1 if parts else 0)

    def append(self, frame: pd.DataFrame) -> None:
        import pyarrow.parquet as pq

        self.path.mkdir(parents=True, exist_ok=True)
        name = f"part-{self._next:06d}.parquet"
        tmp = self.path / f".{name}.tmp"
        try:
            pq.write_table(_arrow_table(frame), tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path)
        self._next += 1


def _store(path: Path) -> _CsvStore | _ParquetStore:
    return _CsvStore(path) if path.suffix.lower() == ".csv" else _ParquetStore(path)


def load_results(path: str | os.PathLike, repair: bool = False) -> pd.DataFrame:
    """Read a sweep results file written by :func:`sweep`: a ``.csv`` file, or a ``.parquet``
    directory of part files (a single ``.parquet`` file from an older version is read too).

    A broken tail (the last CSV line, or the last part files, cut off by a crash or a kill) is
    refused with the fix, or, with ``repair=True``, dropped (set aside next to the file) with a
    :class:`ResultsRepaired` warning naming what was dropped; :func:`sweep` repairs this way.
    While another sweep is writing the file its unfinished last line is simply not read.
    Damage anywhere but the tail is always refused: nothing is dropped silently.

    Raises:
        ResultsFileError: (a ``ValueError``) naming the file, the line or part and the fix.
    """
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".parquet"):
        raise ParameterError("path", str(path), "a .csv or .parquet path", owner="load_results")
    if not p.exists() and not (
        p.suffix.lower() == ".parquet" and _ParquetStore(p)._migrating().is_dir()
    ):
        raise FileNotFoundError(f"{p} does not exist")
    lock = _ResultsLock(p)
    active = lock.held_by_other()
    if repair and not active:
        with lock:
            frame = _store(p).read(repair=True, writer_active=False)
    else:
        frame = _store(p).read(repair=False, writer_active=active)
    return _tidy(frame) if len(frame) else frame.reindex(columns=_columns())
