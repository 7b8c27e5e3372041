"""python -m qrr.ray_rerank MODEL INPUT OUTPUT: score every (query, document) row of a JSON
lines or Parquet input on Ray (qrr.ray.rerank_dataset) and write the rows, every field
kept, in input order, with score and logit added. The output appears whole or not at all.

    python -m qrr.ray_rerank MODEL INPUT OUTPUT [--address ADDR] [--actors N]
        [--threads-per-actor T] [--batch-size B] [--instruction S] [--device cpu|cuda]
        [--query-column C] [--document-column C] [--id-column C]

INPUT: a .jsonl/.json/.ndjson file (JSON lines), a .parquet file, or a directory of either
(or a URL pyarrow reads, such as s3://...), readable by every node. OUTPUT: a .jsonl/.json
file, a .parquet file, or else a directory of Parquet files, written by this process.
Without --address a local Ray instance is started, bound to 127.0.0.1 only; with one, the
job joins that cluster. Exit status: 0 done, 1 the job failed, 2 usage (or no [ray] extra).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections import Counter
from typing import List, Optional

from ._args import DEVICE_HELP, MAX_THREADS

NODE_COLUMN = "__qrr_node"  # added by the actors, counted here, never written
ACTOR_START_S = 300         # how long the actors may take to start


def connect(address: Optional[str]) -> bool:
    """Start or join Ray; True when this call did (and shutdown is ours to do)."""
    if "ray" in sys.modules:
        import ray
        if ray.is_initialized():
            return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        from .ray import init_local
        init_local(logging_level=logging.WARNING)
    else:
        import ray
        ray.init(address=address, logging_level=logging.WARNING)
    return True


def check_local_pool(actors: Optional[int], threads: int, device: str = "cpu") -> None:
    """Refuse a pool the local instance started here can never hold: Ray would wait for
    CPUs (or, with --device cuda, a GPU per actor) that do not come (a cluster, with
    --address, may grow: there Ray waits ACTOR_START_S). A pool of no set size starts with
    one actor."""
    import ray
    from ._ray_io import UsageError
    have = ray.cluster_resources()
    cpus, gpus = int(have.get("CPU", 0)), int(have.get("GPU", 0))
    need = (actors or 1) * threads
    pool = f"--actors {actors} x " if actors else ""
    if need > cpus:
        raise UsageError(f"{pool}--threads-per-actor {threads} needs {need} CPUs, more than "
                         f"the {cpus} of this machine: use fewer, or join a cluster with "
                         "--address")
    if device == "cuda" and (actors or 1) > gpus:
        raise UsageError(f"--device cuda takes a GPU per actor: {actors or 1} needed, this "
                         f"machine has {gpus}: use fewer --actors, or join a cluster with "
                         "--address")


def _progress(total: Optional[int]):
    """A progress bar on stderr when it is a terminal (in a log, a bar's redraws are noise)."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="pair", desc="qrr.ray_rerank", file=sys.stderr,
                mininterval=1.0)


def _configure_ray_data() -> None:
    import ray.data
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # output rows in input order
    ctx.enable_progress_bars = False  # ours instead
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    ctx.raise_original_map_exception = True  # a bad row's RowError, not Ray's wrapper
    # Start scoring once every requested actor is up (all nodes take part from the first
    # batch); a cluster with no room for them fails after this wait.
    ctx.wait_for_min_actors_s = ACTOR_START_S
    # Ray Data logs a failed job's stack traces; the error this program prints says it.
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def run(args: argparse.Namespace) -> int:
    from ._ray_io import (PART_ROWS, UsageError, Writer, check_not_input, empty_output_schema,
                          input_format, output_format, read_input)
    in_fmt = input_format(args.input)
    out_fmt = output_format(args.output)
    check_not_input(args.input, args.output)
    from . import QrrError, Reranker
    try:  # the model opens here first, so a bad path fails before any Ray work
        Reranker(args.model, threads=1, verify=False).close()
    except QrrError as e:
        raise UsageError(f"cannot open the model: {e}") from None
    try:
        started_ray = connect(args.address)
    except Exception as e:  # Ray's own, e.g. no instance at --address
        where = f" at {args.address}" if args.address else ""
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"cannot start or join Ray{where}: {first}") from None
    import ray
    from .ray import error_message, rerank_dataset
    writer = None
    try:
        if started_ray and args.address is None:
            check_local_pool(args.actors, args.threads_per_actor, args.device)
        _configure_ray_data()
        ds, total = read_input(args.input, in_fmt, args.query_column,
                               args.document_column, args.id_column,
                               rows_per_block=args.batch_size)
        json_input = in_fmt == "json"
        scored = rerank_dataset(ds, args.model,
                                query_column="query" if json_input else args.query_column,
                                document_column="document" if json_input
                                else args.document_column,
                                instruction=args.instruction, actors=args.actors,
                                threads_per_actor=args.threads_per_actor,
                                batch_size=args.batch_size, device=args.device,
                                id_column=args.id_column, node_column=NODE_COLUMN)
        start = time.monotonic()
        writer = Writer(args.output, out_fmt)
        bar = _progress(total)
        rows = 0
        nodes: Counter = Counter()
        try:
            for batch in scored.iter_batches(
                    batch_format="pyarrow",
                    batch_size=PART_ROWS if out_fmt == "parts" else None):
                nodes.update(batch.column(NODE_COLUMN).to_pylist())
                writer.write(batch.drop_columns([NODE_COLUMN]), json_input)
                rows += batch.num_rows
                if bar is not None:
                    bar.update(batch.num_rows)
        finally:
            if bar is not None:
                bar.close()
        if out_fmt != "json" and not writer.started:  # no rows: still the columns
            writer.write(empty_output_schema(ds, json_input).empty_table(), json_input=False)
        writer.commit()
        writer = None
        secs = time.monotonic() - start
        where = ", ".join(f"{ip}: {n}" for ip, n in sorted(nodes.items()))
        print(f"qrr.ray_rerank: {rows} rows, {rows / secs if secs > 0 else 0:.1f} pairs/s, "
              f"{secs:.2f} s, {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
              f"({where or 'none'}) -> {args.output}", file=sys.stderr)
        return 0
    except UsageError:
        raise
    except Exception as e:
        message = error_message(e)
        if message is not None:
            raise UsageError(message) from None
        raise
    finally:
        if writer is not None:
            writer.discard()
        if started_ray:
            ray.shutdown()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qrr.ray_rerank",
                                description="Rerank the (query, document) rows of a JSON lines "
                                            "or Parquet input on a Ray cluster.")
    p.add_argument("model", help="the .qrr file (the same path on every node)")
    p.add_argument("input", help=".jsonl/.json/.ndjson, .parquet, or a directory of them")
    p.add_argument("output", help=".jsonl/.json, .parquet, or a new directory (Parquet parts)")
    p.add_argument("--address", metavar="ADDR",
                   help="a Ray cluster to join (default: a local instance on 127.0.0.1)")
    p.add_argument("--actors", type=int, metavar="N",
                   help="scoring actors (default: as many as fit)")
    p.add_argument("--threads-per-actor", type=int, default=1, metavar="T",
                   help="CPU threads each actor scores with, and the CPUs it asks Ray for "
                        "(default 1)")
    p.add_argument("--batch-size", type=int, default=256, metavar="B",
                   help="rows per batch (default 256)")
    p.add_argument("--instruction", metavar="S",
                   help="replaces the model's default task instruction")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help=DEVICE_HELP + "; with cuda each actor asks Ray for one GPU")
    p.add_argument("--query-column", default="query", metavar="C",
                   help="the field (JSON lines) or column (Parquet) of the query text "
                        "(default query)")
    p.add_argument("--document-column", default="document", metavar="C",
                   help="the field or column of the document text (default document)")
    p.add_argument("--id-column", default="id", metavar="C",
                   help="names a bad row in errors (default id)")
    return p


def parse(argv: Optional[List[str]]) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    for name in ("actors", "threads_per_actor", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads_per_actor > MAX_THREADS:
        p.error(f"--threads-per-actor must be at most {MAX_THREADS}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse(argv)  # --help and usage errors need no Ray
    try:
        from ._ray_io import UsageError
    except ImportError as e:  # no [ray] extra: say what to install, in one line
        print(f"qrr.ray_rerank: {e}", file=sys.stderr)
        return 2
    try:
        return run(args)
    except UsageError as e:
        print(f"qrr.ray_rerank: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # run() has removed the partial output and stopped Ray
        print("qrr.ray_rerank: interrupted; no output written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
