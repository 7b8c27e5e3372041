"""qrr.ray: rerank a Ray Dataset of (query, document) rows across a Ray cluster. Ray Data's
map_batches runs a pool of actors; each opens the model once (the file is memory-mapped, so
actors on one node share its pages) and scores every batch with Reranker.score_grouped.
init_local starts a Ray instance on one machine that keeps to loopback. The command line is
ray_rerank.py, its reading and writing _ray_io.py. Needs the [ray] extra: `pip install
"./python[ray]"` from a qrr checkout.
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import os
import secrets
import shutil
import site
import sys
import tempfile
from typing import TYPE_CHECKING, Any, List, Optional, Union

# Both come with the [ray] extra. ray is only looked for here: it is imported where it is used
# (init_local must come first).
_missing = [m for m in ("ray", "pyarrow") if importlib.util.find_spec(m) is None]
if _missing:
    raise ImportError(f"qrr.ray needs the [ray] extra ({' and '.join(_missing)} not installed): "
                      'pip install "./python[ray]" from a qrr checkout')

import pyarrow as pa

from ._args import MAX_THREADS, bool_arg, int_arg
from .reranker import Reranker

if TYPE_CHECKING:  # ray is imported where it is used: init_local must come first
    import ray

SCORE_COLUMN = "score"
LOGIT_COLUMN = "logit"


def init_local(**ray_init_args: Any) -> None:
    """Start a local Ray instance that keeps to loopback: every Ray port bound to 127.0.0.1,
    usage stats off, no request to a cloud metadata service, token authentication on.

    Call it before anything imports ray: the node address follows
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 only when ray reads it at import. The token is a
    fresh one passed in the environment (RAY_AUTH_TOKEN), never written to a file.
    Ray's process for usage stats asks 169.254.169.254 and metadata.google.internal which
    cloud it runs on, even with usage stats disabled, unless it finds
    ~/ray_bootstrap_config.yaml: the instance starts with HOME at a private directory that
    holds an empty one. Extra arguments go to ray.init (num_cpus, _temp_dir, ...)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if "ray" not in sys.modules:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        if "RAY_AUTH_MODE" not in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    import ray
    from ray._private import ray_constants
    if ray_constants.ENABLE_RAY_CLUSTER or "RAY_AUTH_MODE" not in os.environ:
        raise RuntimeError("qrr.ray.init_local: ray was imported first without "
                           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 and RAY_AUTH_MODE set: call "
                           "init_local before importing ray, or set both beforehand")
    home = tempfile.mkdtemp(prefix="qrr-ray-home-")
    with open(os.path.join(home, "ray_bootstrap_config.yaml"), "w") as f:
        f.write("{}\n")  # a cluster config that names no cloud provider
    atexit.register(shutil.rmtree, home, True)
    saved = {k: os.environ.get(k) for k in ("HOME", "PYTHONUSERBASE")}
    os.environ["PYTHONUSERBASE"] = site.getuserbase()  # keep `pip install --user` packages
    os.environ["HOME"] = home  # for the processes ray.init starts; restored below
    try:
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                 **ray_init_args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class RowError(ValueError):
    """A row the reranker cannot score (a missing or non-string query or document); the
    message names the row, by its id column when the dataset has one."""


def row_name(row: dict, id_column: Optional[str]) -> str:
    """How an error names a row: by its id, else by its fields (shortened)."""
    if id_column and id_column in row:
        return f"row {id_column}={row[id_column]!r}"
    text = json.dumps(row, default=str, ensure_ascii=False)
    return f"row {text[:200]}{'...' if len(text) > 200 else ''}"


def check_text(value: Any, column: str, name: str) -> str:
    """value, when it is a string; else RowError naming the row (name) and the column."""
    if value is None:
        raise RowError(f"{name}: no {column!r} (missing or null)")
    if not isinstance(value, str):
        raise RowError(f"{name}: {column!r} must be a string, not "
                       f"{type(value).__name__} {value!r:.60}")
    return value


def _texts(batch: pa.Table, column: str, id_column: Optional[str]) -> List[str]:
    """The column's values, each checked to be a string."""
    if column not in batch.column_names:
        raise RowError(f"the dataset has no column {column!r} (it has: "
                       f"{', '.join(batch.column_names)})")
    values = batch.column(column).to_pylist()
    for i, v in enumerate(values):
        if not isinstance(v, str):
            check_text(v, column, row_name(batch.slice(i, 1).to_pylist()[0], id_column))
    return values


class _Scorer:
    """The actor of rerank_dataset: one Reranker, opened at start; __call__ scores a batch
    (a pyarrow Table) and returns it with the score and logit columns added."""

    def __init__(self, model: str, threads: int, device: str, verify: bool, query_column: str,
                 document_column: str, instruction: Optional[str], batch_size: int,
                 id_column: Optional[str], node_column: Optional[str]):
        import ray
        self.reranker = Reranker(model, threads=threads, device=device, verify=verify)
        self.query_column, self.document_column = query_column, document_column
        self.instruction, self.batch_size = instruction, batch_size
        self.id_column, self.node_column = id_column, node_column
        self.node = ray.util.get_node_ip_address()

    def __call__(self, batch: pa.Table) -> pa.Table:
        for name in (SCORE_COLUMN, LOGIT_COLUMN, self.node_column):
            if name and name in batch.column_names:
                raise RowError(f"the dataset already has a column {name!r}: rename or drop it")
        queries = _texts(batch, self.query_column, self.id_column)
        documents = _texts(batch, self.document_column, self.id_column)
        scores, logits = self.reranker.score_grouped(list(zip(queries, documents)),
                                                     instruction=self.instruction,
                                                     batch_size=self.batch_size)
        batch = batch.append_column(SCORE_COLUMN, pa.array(scores, pa.float32()))
        batch = batch.append_column(LOGIT_COLUMN, pa.array(logits, pa.float32()))
        if self.node_column:
            batch = batch.append_column(self.node_column,
                                        pa.array([self.node] * batch.num_rows, pa.string()))
        return batch


def actor_cpus(actors: Optional[int], threads: int) -> float:
    """The CPUs each of `actors` actors asks Ray for: its threads, unless the cluster is one
    machine and such a pool would hold every CPU of it, leaving none for the stages before
    scoring (a read asking for one CPU, Ray Data's default, would wait for ever): then the
    machine's CPUs less one, shared among the actors. Ray counts CPUs without pinning them:
    an actor scores with its threads either way. On several nodes, where the actors go is
    Ray's to choose, so no share is sure to leave a node a whole CPU: there the pool asks
    as given (read with num_cpus=0). So does a pool too big for the machine, and every pool
    before Ray has started (Ray Data starts it when the job runs)."""
    import ray
    if actors is None or not ray.is_initialized():
        return threads
    cpus = [c for c in (n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive"))
            if c > 0]
    if len(cpus) != 1 or not cpus[0] - 1 < actors * threads <= cpus[0]:
        return threads
    return (cpus[0] - 1) / actors


def rerank_dataset(ds: "ray.data.Dataset", model: Union[str, "os.PathLike[str]"],
                   query_column: str = "query", document_column: str = "document",
                   instruction: Optional[str] = None, actors: Optional[int] = None,
                   threads_per_actor: int = 1, batch_size: int = 256, device: str = "cpu",
                   id_column: Optional[str] = "id", verify: bool = True,
                   node_column: Optional[str] = None) -> "ray.data.Dataset":
    """ds with the columns ``score`` (P("yes"), float32) and ``logit`` added to every row,
    lazily, as Ray Data does: nothing runs until the result is consumed or written.

    ``model``: a .qrr file, at the same path on every node that runs an actor. ``actors``:
    how many scoring actors (default: Ray Data grows the pool from one actor as far as the
    cluster's CPUs, or GPUs, allow). ``threads_per_actor``: the threads each actor scores
    with, and the CPUs it asks Ray for (less, when ``actors`` such actors would hold every
    CPU of a one-machine cluster: see actor_cpus). ``batch_size``: rows per batch; a
    batch's rows are grouped by query so each query's prompt prefix is computed once.
    ``device="cuda"``: one GPU per actor. ``instruction``: replaces the model's default
    task instruction. ``id_column``: names a bad row in errors (when the dataset has that
    column). ``verify``: check the weights' checksums when each actor opens the model.
    ``node_column``: when given, a column with the IP address of the node that scored
    each row.

    A row whose query or document is missing or not a string fails the job with RowError
    naming the row (a column whose blocks hold different types, say a number among
    strings, fails earlier, in Ray, when the blocks are joined into batches). Ray restarts
    an actor that dies and retries its batches. The stages before this one need a CPU of
    their own: a pool of ``actors`` on one machine leaves them one; on several nodes, or
    with a growing pool, read with num_cpus=0 (and a concurrency) when the actors may hold
    every CPU.
    """
    import ray.data
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    verify = bool_arg(verify, "verify", ints_ok=True)  # here, not in the actors: one clear error
    threads_per_actor = int_arg(threads_per_actor, "threads_per_actor", 1, MAX_THREADS)
    batch_size = int_arg(batch_size, "batch_size", 1)
    if actors is not None:
        actors = int_arg(actors, "actors", 1)
    # Without a size, Ray Data's pool grows from one actor as far as the cluster has room.
    compute = ray.data.ActorPoolStrategy(size=actors) if actors is not None else None
    resources = {"num_cpus": actor_cpus(actors, threads_per_actor)}
    if device == "cuda":
        resources["num_gpus"] = 1
    return ds.map_batches(
        _Scorer,
        fn_constructor_kwargs=dict(model=os.path.abspath(os.fspath(model)),
                                   threads=threads_per_actor, device=device, verify=verify,
                                   query_column=query_column, document_column=document_column,
                                   instruction=instruction, batch_size=batch_size,
                                   id_column=id_column, node_column=node_column),
        batch_size=batch_size, batch_format="pyarrow", compute=compute, **resources)


def error_message(exc: BaseException) -> Optional[str]:
    """The message of the RowError or QrrError behind an exception Ray raised for a failed
    job (a bad row; a model an actor could not open), or None when there is none. Ray wraps
    what an actor raised: the original comes back as an object for a batch when
    ``DataContext.get_current().raise_original_map_exception`` is True, and as text only
    for an actor that failed to start."""
    import ray
    from .errors import QrrError
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (RowError, QrrError)) and not isinstance(e, ray.exceptions.RayError):
            return str(e).splitlines()[0]  # Ray appends lines of its own to the message
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    for line in str(exc).splitlines():
        for name in ("qrr.ray.RowError: ", "qrr.errors.QrrError: "):
            if line.startswith(name):
                return line[len(name):]
    return None


__all__ = ["rerank_dataset", "RowError", "SCORE_COLUMN", "LOGIT_COLUMN", "error_message",
           "init_local"]
