"""Input and output of python -m qrr.ray_rerank: formats told by the name, JSON lines read
as bytes and parsed by us, strictly, as `qrr score` reads them (_jsonl; each object comes
back out as it went in: Ray's JSON readers retype values, "007" to 7 or a date string to a
timestamp, and its text reader cuts lines at U+2028), and an output written under a
temporary name, renamed into place only when complete.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List, Tuple

# first: without the [ray] extra, importing .ray says what to install
from .ray import LOGIT_COLUMN, SCORE_COLUMN, RowError, check_text
from ._jsonl import BOM, decode, parse

import pyarrow as pa

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIX = ".parquet"
LINE_COLUMN = "__qrr_line"  # a JSON input's line, carried beside the texts to score
PART_ROWS = 100_000         # rows per file of a directory output
READ_TASKS = 4              # reading tasks at once: they take no CPU from Ray's count


class UsageError(Exception):
    """An input or output this program cannot take; the message says which and why."""


def is_url(path: str) -> bool:
    return "://" in path


def input_format(path: str) -> str:
    """'json' or 'parquet', from the name (or, for a directory, the files in it)."""
    if not is_url(path) and os.path.isdir(path):
        names = os.listdir(path)
        if any(n.endswith(PARQUET_SUFFIX) for n in names):
            return "parquet"
        if any(n.endswith(JSON_SUFFIXES) for n in names):
            return "json"
        raise UsageError(f"{path}: a directory with no .parquet or .jsonl/.json files")
    if path.endswith(JSON_SUFFIXES):
        fmt = "json"
    elif path.endswith(PARQUET_SUFFIX):
        fmt = "parquet"
    else:
        raise UsageError(f"{path}: cannot tell the format from the name: use .jsonl, .json, "
                         ".ndjson, .parquet or a directory of such files")
    if not is_url(path) and not os.path.exists(path):
        raise UsageError(f"{path}: No such file or directory")
    return fmt


def output_format(path: str) -> str:
    """'json', 'parquet' (one file) or 'parts' (a directory of Parquet files). The directory
    it goes in must exist and be writable: the job would fail only once it has run."""
    if is_url(path):
        raise UsageError(f"{path}: the output is written by this process: give a local path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{path}: no directory {parent} to write it in")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: the directory {parent} is not writable")
    if path.endswith(JSON_SUFFIXES):
        return "json"
    if path.endswith(PARQUET_SUFFIX):
        return "parquet"
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise UsageError(f"{path}: exists; a directory output must be new or empty")
    return "parts"


def check_not_input(input_path: str, output: str) -> None:
    """Refuse an output that would overwrite the input: the same file (a link to it
    included), or a path inside an input directory."""
    if is_url(input_path):
        return
    inputs = [input_path]
    if os.path.isdir(input_path):
        inside = os.path.realpath(input_path)
        # where the output and its temporary file are written: in its parent (the name is
        # not resolved: a rename onto a symbolic link replaces the link)
        out = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(output))),
                           os.path.basename(output))
        if os.path.commonpath([inside, out]) == inside:
            raise UsageError(f"{output}: inside the input directory {input_path}")
        inputs = [os.path.join(d, n) for d, _, names in os.walk(input_path) for n in names]
    if os.path.exists(output) and any(os.path.samefile(output, i) for i in inputs):
        raise UsageError(f"{output}: the same file as the input {input_path}")


def json_files(path: str) -> List[str]:
    """The JSON lines files of INPUT: the file, or a directory's, in name order."""
    if not os.path.isdir(path):
        return [path]
    return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(JSON_SUFFIXES)]


def line_ranges(files: List[str], rows_per_block: int) -> Tuple[List[dict], int]:
    """(ranges, lines): byte ranges of rows_per_block lines each ({"path", "start", "end",
    "line": the first line's number}), found by one pass over the files here, and the
    lines in all. Each range becomes one block, read by its own task: one big file is
    read in parallel and in pieces, and every actor gets work."""
    ranges = []
    total = 0
    for path in files:
        with open(path, "rb") as f:
            # a byte-order mark at the file's start is skipped, as `qrr score` skips it
            start = pos = len(BOM) if f.read(len(BOM)) == BOM else 0
            f.seek(pos)
            first, n = 1, 0
            for line in f:  # a binary file splits at b"\n" only
                pos += len(line)
                n += 1
                if n == rows_per_block:
                    ranges.append({"path": path, "start": start, "end": pos, "line": first})
                    start, first, n = pos, first + n, 0
            if n:
                ranges.append({"path": path, "start": start, "end": pos, "line": first})
            total += first - 1 + n
    return ranges, total


def parse_range(batch: pa.Table, query_column: str, document_column: str,
                id_column: str) -> pa.Table:
    """One range of a JSON lines file (a row of line_ranges) -> the texts to score and each
    line as read. Lines are split at "\n" only (a JSON string may hold U+2028, where
    str.splitlines would cut), each is read as `qrr score` reads one (_jsonl.parse: strict
    JSON, no repeated key, no NaN), and an error names the file and the line."""
    r = batch.slice(0, 1).to_pylist()[0]
    with open(r["path"], "rb") as f:
        f.seek(r["start"])
        data = f.read(r["end"] - r["start"])
    queries, documents, lines = [], [], []
    for number, raw in enumerate(data.split(b"\n"), r["line"]):
        if not raw.strip():
            continue
        where = f"{r['path']} line {number}"
        try:
            line = decode(raw)
            row = parse(line)
        except ValueError as e:
            raise RowError(f"{where}: {e}") from None
        if id_column in row:
            where += f" ({id_column}={row[id_column]!r})"
        for taken in ("score", "logit"):
            if taken in row:
                raise RowError(f"{where}: already has a {taken!r} field")
        queries.append(check_text(row.get(query_column), query_column, where))
        documents.append(check_text(row.get(document_column), document_column, where))
        lines.append(line)
    return pa.table({"query": pa.array(queries, pa.string()),
                     "document": pa.array(documents, pa.string()),
                     LINE_COLUMN: pa.array(lines, pa.string())})


def read_input(path: str, fmt: str, query_column: str, document_column: str,
               id_column: str, rows_per_block: int):
    """(dataset, rows or None): the input as a Ray Dataset, a JSON one as the columns query,
    document and the line, in blocks of about rows_per_block rows (a block goes to one
    actor). Reading asks Ray for no CPU (the scoring actors may hold them all), with at
    most READ_TASKS tasks at once."""
    import ray.data
    if fmt == "parquet":
        import pyarrow.parquet as pq
        ds = ray.data.read_parquet(path, num_cpus=0, concurrency=READ_TASKS)
        rows = None
        if not is_url(path) and os.path.isfile(path):
            meta = pq.ParquetFile(path).metadata
            rows = meta.num_rows
            size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            # Ray cuts what a read returns into blocks of at most this many bytes.
            ray.data.DataContext.get_current().target_max_block_size = max(
                4096, rows_per_block * size // max(1, rows))
        return ds, rows
    if is_url(path):
        raise UsageError(f"{path}: JSON lines are read from a path every node sees (a shared "
                         "filesystem); for object storage, use Parquet")
    ranges, lines = line_ranges(json_files(path), rows_per_block)
    blocks = ray.data.from_items(ranges, override_num_blocks=max(1, len(ranges)))
    ds = blocks.map_batches(parse_range, batch_size=1, batch_format="pyarrow",
                            fn_kwargs=dict(query_column=query_column,
                                           document_column=document_column,
                                           id_column=id_column),
                            num_cpus=0, compute=ray.data.TaskPoolStrategy(
                                size=max(1, min(READ_TASKS, len(ranges)))))
    return ds, lines


def empty_output_schema(ds: "ray.data.Dataset", json_input: bool) -> pa.Schema:
    """The columns of an output without rows: the input's (a JSON input's fields are known
    only from its rows), then score and logit, as the scoring adds them."""
    schema = None if json_input else ds.schema()
    base = list(schema.base_schema) if schema is not None else []
    return pa.schema(base + [pa.field(SCORE_COLUMN, pa.float32()),
                             pa.field(LOGIT_COLUMN, pa.float32())])


def output_rows(batch: pa.Table) -> List[dict]:
    """A scored batch of JSON lines as the objects to write: each line's object as read,
    with score and logit added."""
    rows = []
    for line, score, logit in zip(batch.column(LINE_COLUMN).to_pylist(),
                                  batch.column("score").to_pylist(),
                                  batch.column("logit").to_pylist()):
        row = json.loads(line)
        row["score"], row["logit"] = score, logit
        rows.append(row)
    return rows


class Writer:
    """Writes batches (a pyarrow Table, or the rows of a JSON input) to a temporary name
    beside the output; commit() renames it into place, discard() removes it."""

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt
        out = Path(path)
        self.tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        self.file = None
        self.parquet = None
        self.parts = 0
        if fmt == "json":
            self.file = open(self.tmp, "w", encoding="utf-8")
        elif fmt == "parts":
            self.tmp.mkdir()

    def write(self, batch: pa.Table, json_input: bool) -> None:
        import pyarrow.parquet as pq
        rows = output_rows(batch) if json_input else None
        if self.fmt == "json":
            for row in rows if rows is not None else batch.to_pylist():
                try:  # json.dumps would write NaN, which no JSON reader takes
                    text = json.dumps(row, ensure_ascii=False, default=str, allow_nan=False)
                except ValueError:
                    raise UsageError(f"{self.path}: a row holds NaN or an infinity, which "
                                     "JSON cannot: write Parquet") from None
                self.file.write(text + "\n")
            return
        if rows is not None:
            try:
                batch = pa.Table.from_pylist(rows)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                raise UsageError(f"{self.path}: the input's fields do not fit Parquet "
                                 f"columns (one type per field): {e}") from None
        if self.fmt == "parquet":
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.tmp, batch.schema)
            try:
                batch = batch.cast(self.parquet.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                raise UsageError(f"{self.path}: a field's type changes between rows, which "
                                 f"one Parquet file cannot hold (write a directory): {e}") \
                    from None
            self.parquet.write_table(batch)
        else:
            pq.write_table(batch, self.tmp / f"part-{self.parts:05d}.parquet")
            self.parts += 1

    @property
    def started(self) -> bool:
        """Parquet: some table (perhaps of no rows) was written."""
        return self.parquet is not None or self.parts > 0

    def _close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
        if self.parquet:
            self.parquet.close()
            self.parquet = None

    def commit(self) -> None:
        self._close()
        if self.fmt == "parts" and os.path.isdir(self.path):
            os.rmdir(self.path)  # new or empty, as output_format checked
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self._close()
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            self.tmp.unlink()
