"""qrr.Reranker: a .qrr model and one scoring context, with the calls sentence-transformers'
CrossEncoder users know (predict, rank) plus tokenize and info. Thin over the C API: the
prompt, truncation, batching of one query's documents and the scores are all libqrr's.
"""
from __future__ import annotations

import contextlib
import ctypes
import operator
import os
import threading
from ctypes import POINTER, byref, c_char_p, c_float, c_int32, c_size_t, c_void_p
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _capi
from ._args import MAX_THREADS, bool_arg, int_arg, path_arg
from ._progress import progress
from .errors import QrrError, check, last_error

_lib = _capi.lib
_DEVICES = {"cpu": _capi.QRR_DEVICE_CPU, "cuda": _capi.QRR_DEVICE_CUDA}

Pair = Tuple[str, str]

# The bounds of int arguments (ctypes would silently wrap a larger Python int to 32 bits).
MAX_LENGTH_CAP = 1000000  # the qrr command's bound on "max_length" (tools/qrr/jsonl_cases.c)
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _utf8(text: str, what: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates
        raise ValueError(f"{what} cannot be encoded as UTF-8: {e}") from None


def _token_ids(ids: Iterable[int]) -> List[int]:
    """ids as ints that fit int32 (the library then checks them against the vocabulary)."""
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"ids must be a sequence of int, not {type(ids).__name__}")
    out = []
    for i, t in enumerate(ids):
        try:
            v = operator.index(t)  # any integer (NumPy's too)
        except TypeError:
            raise TypeError(f"ids[{i}] must be an int, not {type(t).__name__}") from None
        if not INT32_MIN <= v <= INT32_MAX:
            raise ValueError(f"ids[{i}] = {v} is not a token id (it does not fit int32)")
        out.append(v)
    return out


def _torch_for_tensors() -> Any:
    """torch, for predict's convert_to_tensor=True."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"convert_to_tensor=True needs torch, which cannot be imported "
                          f"({e}): install it, or leave convert_to_tensor False for a numpy "
                          "array") from e
    return torch


def _is_pair(x: Any) -> bool:
    """A (query, document) pair: a tuple, a list or a NumPy row of two str (NumPy's np.str_
    is a str)."""
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and len(x) == 2
    return isinstance(x, (tuple, list)) and len(x) == 2


def _as_list(value: Any, name: str, what: str) -> List[Any]:
    """list(value), or a TypeError that names the argument when value is not iterable (an
    error raised while iterating is left as it is)."""
    try:
        items = iter(value)
    except TypeError:
        raise TypeError(f"{name} must be {what}, not {type(value).__name__}") from None
    return list(items)


def _encode_pairs(items: Sequence[Pair]) -> List[Tuple[bytes, bytes]]:
    """Each (query, document) pair as UTF-8 bytes; a malformed pair is named by its index."""
    encoded = []
    for i, pair in enumerate(items):
        if not _is_pair(pair):
            raise TypeError(f"pair {i} must be a (query, document) pair of str")
        encoded.append((_utf8(pair[0], f"query of pair {i}"),
                        _utf8(pair[1], f"document of pair {i}")))
    return encoded


class Reranker:
    """A Qwen3-Reranker converted to .qrr (see qrr.convert), ready to score.

    ``threads``: CPU threads for this reranker (0 = one per CPU). ``device``: "cpu" or
    "cuda" (needs a package built with QRR_CUDA=1 and a GPU). ``verify`` (a bool, or 0/1): check
    every tensor's checksum at open (False skips those of the linear layers and the
    embedding, nearly all of the file).

    One Reranker scores on one thread at a time (calls from several threads take turns);
    give each thread its own Reranker to score in parallel: the library is called without
    the GIL, and the mapped file is shared by the operating system.
    """

    def __init__(self, path: Union[str, bytes, "os.PathLike[Any]"], threads: int = 0,
                 device: str = "cpu", verify: bool = True):
        self._model = c_void_p()
        self._ctx = c_void_p()
        self._lock = threading.Lock()
        if not isinstance(device, str):
            raise TypeError(f"device must be a str ('cpu' or 'cuda'), not {type(device).__name__}")
        if device not in _DEVICES:
            raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
        verify = bool_arg(verify, "verify", ints_ok=True)
        threads = int_arg(threads, "threads", 0, MAX_THREADS)
        raw = path_arg(path, "path")
        self.path = os.fsdecode(raw)
        mp = _lib.qrr_model_default_params()
        mp.verify_weights = 1 if verify else 0
        check(_lib.qrr_model_open(raw, mp, byref(self._model)))
        cp = _lib.qrr_ctx_default_params()
        cp.n_threads = threads
        cp.device = _DEVICES[device]
        status = _lib.qrr_ctx_create(self._model, cp, byref(self._ctx))
        if status != _capi.QRR_OK:
            err = last_error(status)
            self.close()
            if device == "cuda" and err.status_name == "QRR_ERR_UNSUPPORTED":  # no CUDA module
                hint = _capi.cuda_module_hint()
                if hint:
                    err = QrrError(f"{err}\n{hint}", err.status, err.status_name)
            raise err

    # ---- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Free the context and unmap the model (also done when the object is collected)."""
        with self._lock:
            if self._ctx:
                _lib.qrr_ctx_free(self._ctx)
                self._ctx = c_void_p()
            if self._model:
                _lib.qrr_model_close(self._model)
                self._model = c_void_p()

    def __enter__(self) -> "Reranker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self.close()

    def __reduce__(self):
        raise TypeError(f"a Reranker holds an open model and cannot be pickled or copied: "
                        f"open the file again in the other process (qrr.Reranker({self.path!r}))")

    def _need_open(self) -> None:
        if not self._ctx:
            raise QrrError(f"{self.path}: this Reranker is closed", -3, "QRR_ERR_INVALID_ARG")

    @contextlib.contextmanager
    def _open_model(self):
        """Hold the lock with the model open: close() waits until the call is done."""
        with self._lock:
            self._need_open()
            yield

    # ---- scoring ----------------------------------------------------------------------

    def _score_params(self, instruction: Optional[str], max_length: Optional[int],
                      keep: List[bytes], truncate: bool = True):
        sp = _lib.qrr_score_default_params()
        sp.truncate = int(bool_arg(truncate, "truncate"))
        if instruction is not None:
            ins = _utf8(instruction, "instruction")
            keep.append(ins)
            sp.instruction = ins  # b"" is an empty instruction; None keeps the default
            sp.instruction_len = len(ins)
        if max_length is not None:
            sp.max_length = int_arg(max_length, "max_length", 1, MAX_LENGTH_CAP)
        return sp

    def _score_group(self, query: bytes, docs: Sequence[bytes], sp, scores, logits) -> None:
        """Score one query against docs into the float32 arrays scores and logits."""
        n = len(docs)
        ptrs = (c_char_p * n)(*docs)
        lens = (c_size_t * n)(*(len(d) for d in docs))
        fp = POINTER(c_float)
        with self._open_model():
            status = _lib.qrr_ctx_score_len(self._ctx, query, len(query), ptrs, lens, n, sp,
                                            scores.ctypes.data_as(fp), logits.ctypes.data_as(fp))
            if status != _capi.QRR_OK:
                raise last_error(status)

    def predict(self, pairs: Union[Pair, Sequence[Pair]], batch_size: int = 32,
                show_progress_bar: Optional[bool] = None,
                activation_fn: Optional[Callable[[np.ndarray], Any]] = None,
                apply_softmax: bool = False, convert_to_numpy: bool = True,
                convert_to_tensor: bool = False, *, instruction: Optional[str] = None,
                raw: bool = False, max_length: Optional[int] = None,
                truncate: bool = True) -> Any:
        """Score (query, document) pairs, with CrossEncoder.predict's arguments in its order
        (qrr's own ones keyword-only after them).

        Returns a float32 numpy array of P("yes") per pair, in input order (``raw=True``: the
        logits, logit_yes - logit_no, or the single logit of a sequence-classification
        model). One pair given alone returns one number. ``activation_fn``: a callable that
        gets the logits as a float32 numpy array and returns one number per pair, in place
        of the sigmoid (None). ``apply_softmax`` changes nothing: there is one score per
        pair. ``convert_to_numpy=False``: a list of floats; ``convert_to_tensor=True``: a
        torch tensor (needs torch). Consecutive pairs with the same query are scored
        together, ``batch_size`` documents per call, so that their shared prompt prefix is
        computed once. ``instruction`` replaces the model's default task instruction;
        ``max_length`` its prompt length limit in tokens. A longer prompt is cut as the
        model's recipe cuts it: its body (instruction, query, document, in that order) loses
        its end, the document first; ``truncate=False`` raises QrrError
        (QRR_ERR_TOO_LONG) instead. ``show_progress_bar`` shows one (tqdm when installed).
        """
        raw = bool_arg(raw, "raw")
        show_progress_bar = bool_arg(show_progress_bar, "show_progress_bar", none_ok=True)
        bool_arg(apply_softmax, "apply_softmax")
        convert_to_numpy = bool_arg(convert_to_numpy, "convert_to_numpy")
        convert_to_tensor = bool_arg(convert_to_tensor, "convert_to_tensor")
        if activation_fn is not None:
            if not callable(activation_fn):
                raise TypeError(f"activation_fn must be callable or None, not "
                                f"{type(activation_fn).__name__}")
            if raw:
                raise ValueError("raw=True and activation_fn both say what to return: give one")
        torch = _torch_for_tensors() if convert_to_tensor else None
        single = _is_pair(pairs) and all(isinstance(x, str) for x in pairs)
        items: Sequence[Pair] = [pairs] if single else _as_list(  # type: ignore[list-item]
            pairs, "pairs", "a (query, document) pair or a sequence of them")
        scores, logits = self._score_pairs(items, instruction, batch_size,
                                           bool(show_progress_bar), max_length, truncate)
        if activation_fn is not None:
            out = np.asarray(activation_fn(logits), dtype=np.float32)
            if out.shape != logits.shape:
                raise ValueError(f"activation_fn must return one number per pair: shape "
                                 f"{logits.shape}, not {out.shape}")
        else:
            out = logits if raw else scores
        result: Any = out
        if torch is not None:
            result = torch.from_numpy(out)
        elif not convert_to_numpy:
            result = out.tolist()
        return result[0] if single else result

    def _score_pairs(self, items: Sequence[Pair], instruction: Optional[str], batch_size: int,
                     show_progress_bar: bool, max_length: Optional[int],
                     truncate: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """(scores, logits) of the pairs, as float32 arrays in input order."""
        batch_size = int_arg(batch_size, "batch_size", 1)
        self._need_open()  # also when there is nothing to score
        keep: List[bytes] = []
        sp = self._score_params(instruction, max_length, keep, truncate)
        n = len(items)
        scores = np.empty(n, dtype=np.float32)
        logits = np.empty(n, dtype=np.float32)
        encoded = _encode_pairs(items)
        with progress(n, show_progress_bar, "qrr predict") as bar:
            start = 0
            while start < n:
                query = encoded[start][0]
                end = start + 1
                while end < n and end - start < batch_size and encoded[end][0] == query:
                    end += 1
                docs = [d for _, d in encoded[start:end]]
                self._score_group(query, docs, sp, scores[start:end], logits[start:end])
                bar.update(end - start)
                start = end
        return scores, logits

    def score_grouped(self, pairs: Sequence[Pair], instruction: Optional[str] = None,
                      max_length: Optional[int] = None, batch_size: int = 256,
                      truncate: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """(scores, logits) of (query, document) pairs given in any order, as two float32
        arrays in input order. The pairs are grouped by query over the whole list (not only
        consecutive ones) and scored ``batch_size`` prompts per library call
        (qrr_ctx_score_groups): each query's prompt prefix is computed once, and the groups'
        documents share forward chunks. The numbers equal predict's within float rounding.
        """
        batch_size = int_arg(batch_size, "batch_size", 1)
        self._need_open()  # also when there is nothing to score
        keep: List[bytes] = []
        sp = self._score_params(instruction, max_length, keep, truncate)
        encoded = _encode_pairs(_as_list(pairs, "pairs", "a sequence of (query, document) pairs"))
        n = len(encoded)
        scores = np.empty(n, dtype=np.float32)
        logits = np.empty(n, dtype=np.float32)
        by_query: Dict[bytes, List[int]] = {}
        for i, (query, _) in enumerate(encoded):
            by_query.setdefault(query, []).append(i)
        call: List[List[int]] = []  # the groups of the next library call, as pair indices
        size = 0
        for idx in by_query.values():
            for start in range(0, len(idx), batch_size):
                part = idx[start:start + batch_size]
                if call and size + len(part) > batch_size:
                    self._score_call(encoded, call, sp, scores, logits)
                    call, size = [], 0
                call.append(part)
                size += len(part)
        if call:
            self._score_call(encoded, call, sp, scores, logits)
        return scores, logits

    def _score_call(self, encoded: Sequence[Tuple[bytes, bytes]], groups: List[List[int]],
                    sp, scores: np.ndarray, logits: np.ndarray) -> None:
        """One qrr_ctx_score_groups call over groups of pair indices; results scattered into
        scores and logits at those indices."""
        ip = POINTER(c_int32)
        fp = POINTER(c_float)
        keep: List[Any] = []
        structs = (_capi.Group * len(groups))()
        with self._open_model():
            for g, idx in enumerate(groups):
                prompts = [self._prompt_array(*encoded[i], sp) for i in idx]
                ptrs = (ip * len(idx))(*(p.ctypes.data_as(ip) for p in prompts))
                lens = (c_size_t * len(idx))(*(len(p) for p in prompts))
                out = np.empty((2, len(idx)), dtype=np.float32)
                keep.append((prompts, ptrs, lens, out))
                structs[g] = _capi.Group(ptrs, lens, len(idx), out[0].ctypes.data_as(fp),
                                         out[1].ctypes.data_as(fp))
            status = _lib.qrr_ctx_score_groups(self._ctx, structs, len(groups))
            if status != _capi.QRR_OK:
                raise last_error(status)
        for idx, (_, _, _, out) in zip(groups, keep):
            scores[idx] = out[0]
            logits[idx] = out[1]

    def _prompt_array(self, query: bytes, document: bytes, sp) -> np.ndarray:
        """The prompt ids of one pair as an int32 array (qrr_model_prompt_ids_len)."""
        buf = np.empty(512, dtype=np.int32)
        while True:
            n = c_size_t(0)
            status = _lib.qrr_model_prompt_ids_len(
                self._model, query, len(query), document, len(document), sp,
                buf.ctypes.data_as(POINTER(c_int32)), len(buf), byref(n))
            if status == _capi.QRR_ERR_BUFFER_TOO_SMALL and n.value > len(buf):
                buf = np.empty(n.value, dtype=np.int32)
                continue
            check(status)
            return buf[:n.value].copy()

    def last_stats(self) -> Dict[str, int]:
        """Token counts of the last library call: {"tokens": prompt tokens in all,
        "tokens_computed": those the forward pass ran (fewer when a prefix was shared)}."""
        with self._open_model():
            st = _lib.qrr_ctx_last_stats(self._ctx)
        return {"tokens": st.tokens, "tokens_computed": st.tokens_computed}

    def rank(self, query: str, documents: Sequence[str], top_k: Optional[int] = None,
             return_documents: bool = False, batch_size: int = 32,
             show_progress_bar: Optional[bool] = None,
             activation_fn: Optional[Callable[[np.ndarray], Any]] = None,
             apply_softmax: bool = False, convert_to_numpy: bool = True,
             convert_to_tensor: bool = False, *, instruction: Optional[str] = None,
             max_length: Optional[int] = None, truncate: bool = True) -> List[Dict[str, Any]]:
        """Rank documents against one query, with CrossEncoder.rank's arguments in its order
        (qrr's own ones keyword-only after them): a list of {"corpus_id": index in
        documents, "score": P("yes") or activation_fn's number[, "text": the document]},
        best first (equal scores keep the documents' order), the first ``top_k`` only when
        given. The scores are floats: ``apply_softmax``, ``convert_to_numpy`` and
        ``convert_to_tensor`` are taken for CrossEncoder's sake and change nothing."""
        if isinstance(documents, (str, bytes)):  # would rank each character as a document
            raise TypeError(f"documents must be a list of str, not {type(documents).__name__}")
        if top_k is not None:
            top_k = int_arg(top_k, "top_k", 0)
        return_documents = bool_arg(return_documents, "return_documents")
        bool_arg(apply_softmax, "apply_softmax")
        bool_arg(convert_to_numpy, "convert_to_numpy")
        bool_arg(convert_to_tensor, "convert_to_tensor")
        docs = _as_list(documents, "documents", "a list of str")
        _utf8(query, "query")  # named as rank's arguments, not as the pairs predict is given
        for i, d in enumerate(docs):
            _utf8(d, f"document {i}")
        scores = self.predict([(query, d) for d in docs], batch_size, show_progress_bar,
                              activation_fn, instruction=instruction, max_length=max_length,
                              truncate=truncate)
        order = sorted(range(len(docs)), key=lambda i: -float(scores[i]))
        if top_k is not None:
            order = order[:top_k]
        ranked = []
        for i in order:
            hit: Dict[str, Any] = {"corpus_id": i, "score": float(scores[i])}
            if return_documents:
                hit["text"] = docs[i]
            ranked.append(hit)
        return ranked

    # ---- text -------------------------------------------------------------------------

    def tokenize(self, text: str) -> List[int]:
        """Token ids of text with the model's tokenizer (no special tokens added; special
        tokens written in the text are matched, as Hugging Face tokenizers do)."""
        data = _utf8(text, "text")
        return self._ids(lambda buf, cap, n: _lib.qrr_model_tokenize(
            self._model, data, len(data), buf, cap, n))

    def prompt_ids(self, query: str, document: str, instruction: Optional[str] = None,
                   max_length: Optional[int] = None, truncate: bool = True) -> List[int]:
        """The token ids of the full prompt predict scores for (query, document)."""
        q, d = _utf8(query, "query"), _utf8(document, "document")
        keep: List[bytes] = []
        sp = self._score_params(instruction, max_length, keep, truncate)
        return self._ids(lambda buf, cap, n: _lib.qrr_model_prompt_ids_len(
            self._model, q, len(q), d, len(d), sp, buf, cap, n))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids (special tokens written as their text)."""
        arr = (c_int32 * len(ids := _token_ids(ids)))(*ids)
        need = c_size_t(0)
        with self._open_model():
            status = _lib.qrr_model_decode(self._model, arr, len(ids), None, 0, byref(need))
            if status not in (_capi.QRR_OK, _capi.QRR_ERR_BUFFER_TOO_SMALL):
                raise last_error(status)
            out = ctypes.create_string_buffer(need.value + 1)
            check(_lib.qrr_model_decode(self._model, arr, len(ids), out, len(out), byref(need)))
        return out.raw[:need.value].decode("utf-8")

    def _ids(self, call) -> List[int]:
        cap = 256
        with self._open_model():
            while True:
                buf = (c_int32 * cap)()
                n = c_size_t(0)
                status = call(buf, cap, byref(n))
                if status == _capi.QRR_ERR_BUFFER_TOO_SMALL and n.value > cap:
                    cap = n.value
                    continue
                check(status)
                return list(buf[:n.value])

    # ---- what the model holds ---------------------------------------------------------

    def info(self) -> Dict[str, Any]:
        """What the model holds, from the library's accessors: hyper-parameters, weight
        type, head and labels (and how they were found), prompt sizes, max_length,
        tokenizer counts, the metadata strings ("strings": prompts, labels, provenance)
        and the tensors."""
        with self._open_model():  # the accessors' strings point into the mapped file
            out = self._model_info()
            out["strings"] = self._meta_strings()
            out["tensors"] = self._tensors(out["n_tensors"])
        return out

    def _model_info(self) -> Dict[str, Any]:
        mi = _capi.ModelInfo()
        check(_lib.qrr_model_get_info(self._model, byref(mi)))
        out: Dict[str, Any] = {}
        for name, _ in mi._fields_:
            v = getattr(mi, name)
            out[name] = v.decode() if isinstance(v, bytes) else v
        out["tied"] = bool(out["tied"])
        return out

    def _meta_strings(self) -> Dict[str, str]:
        strings = {}
        i = 0
        while (key := _lib.qrr_model_meta_key(i)) is not None:
            n = c_size_t(0)
            p = _lib.qrr_model_meta_str(self._model, key, byref(n))
            strings[key.decode()] = ctypes.string_at(p, n.value).decode("utf-8") if p else ""
            i += 1
        return strings

    def _tensors(self, count: int) -> List[Dict[str, Any]]:
        tensors = []
        for t in range(count):
            ti = _capi.TensorInfo()
            check(_lib.qrr_model_tensor(self._model, t, byref(ti)))
            tensors.append({"name": ti.name.decode(), "dtype": ti.dtype.decode(),
                            "shape": list(ti.dims[:ti.ndim]), "bytes": ti.bytes})
        return tensors

    def __repr__(self) -> str:
        return f"Reranker({self.path!r})"
