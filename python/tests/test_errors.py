"""Errors: every refusal raises with the library's own message (qrr_last_error), which
names the file, the field or the argument."""
from __future__ import annotations

import copy
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qrr


def test_missing_file_names_its_path(tmp_path):
    path = tmp_path / "nowhere" / "model.qrr"
    with pytest.raises(qrr.QrrError) as e:
        qrr.Reranker(path)
    assert str(path) in str(e.value)
    assert e.value.status_name == "QRR_ERR_IO"


def test_damaged_file_names_what_failed(tied, tmp_path):
    bad = tmp_path / "bad.qrr"
    shutil.copy(tied, bad)
    data = bytearray(bad.read_bytes())
    data[0:8] = b"NOTMODEL"
    bad.write_bytes(bytes(data))
    with pytest.raises(qrr.QrrError) as e:
        qrr.Reranker(bad)
    assert str(bad) in str(e.value) and "QRRMODEL" in str(e.value)
    assert e.value.status_name == "QRR_ERR_BAD_MAGIC"


def test_bad_arguments(tied):
    with pytest.raises(ValueError):
        qrr.Reranker(tied, device="tpu")
    with pytest.raises(ValueError):
        qrr.Reranker(tied, threads=-1)
    with qrr.Reranker(tied) as model:
        with pytest.raises(qrr.QrrError) as e:
            model.predict([("q", "d")], max_length=5)  # cannot hold the prompt's fixed parts
        assert "max_length" in str(e.value)
        with pytest.raises(ValueError):
            model.predict([("q", "d")], batch_size=0)
        with pytest.raises(TypeError):
            model.predict([("q", 3)])
        with pytest.raises(ValueError):
            model.predict([("q", "\ud800")])  # a lone surrogate is no UTF-8


def test_cuda_without_a_usable_gpu_is_a_clear_error(tied):
    """Without the CUDA module beside libqrr: unsupported, saying where it looked. With it (a
    CUDA build): the module is loaded, and on a machine without a GPU it says so."""
    module_there = (Path(qrr._capi.library_path()).resolve().parent / "libqrr_cuda.so.0").exists()
    try:
        model = qrr.Reranker(tied, device="cuda")
    except qrr.QrrError as e:
        # a CPU-only install is told how to get the module; a build tree's library says what
        # to build in its own message
        if qrr._capi.cuda_module_hint():
            assert "QRR_CUDA=1 pip install ./python" in str(e)
        else:
            assert "HINT" not in str(e)
        if module_there:
            assert e.status_name == "QRR_ERR_DEVICE" and "no CUDA device" in str(e), str(e)
        else:
            assert e.status_name == "QRR_ERR_UNSUPPORTED" and "libqrr_cuda.so.0" in str(e), str(e)
    else:  # a GPU is present: it must score
        assert module_there
        with model:
            assert 0 <= model.predict(("q", "d")) <= 1


def test_cuda_from_a_cpu_only_install_says_how_to_install_the_module(tied, tmp_path):
    """A package laid out as a QRR_CUDA=0 pip install leaves it (qrr/_lib/libqrr.so.0 and
    no libqrr_cuda.so.0): device="cuda" gets the library's message and a HINT line naming
    the install that adds the module."""
    package = tmp_path / "site" / "qrr"
    shutil.copytree(Path(qrr.__file__).parent, package,
                    ignore=shutil.ignore_patterns("_lib", "__pycache__"))
    (package / "_lib").mkdir()
    shutil.copy(os.path.realpath(qrr._capi.library_path()), package / "_lib" / "libqrr.so.0")
    env = {k: v for k, v in os.environ.items() if k not in ("QRR_LIBRARY", "QRR_CUDA_MODULE")}
    script = ("import qrr\n"
              "try:\n"
              f"    qrr.Reranker({tied!r}, device='cuda')\n"
              "except qrr.QrrError as e:\n"
              "    print(e.status_name); print(e)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env={**env, "PYTHONPATH": str(package.parent)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "QRR_ERR_UNSUPPORTED", done.stdout
    assert "no CUDA module could be loaded" in lines[1]
    assert lines[-1] == ("HINT: this package was installed without CUDA: reinstall it with "
                         "the CUDA module, QRR_CUDA=1 pip install ./python from a qrr "
                         "checkout (needs nvcc)")


def test_closed_reranker_refuses(tied):
    model = qrr.Reranker(tied)
    model.close()
    with pytest.raises(qrr.QrrError, match="closed"):
        model.predict([("q", "d")])
    # nothing to score is no reason to answer: a closed model refuses it too
    for call in (lambda: model.predict([]), lambda: model.rank("q", []),
                 lambda: model.score_grouped([]), lambda: model.tokenize("x"),
                 lambda: model.decode([1]), model.info, model.last_stats):
        with pytest.raises(qrr.QrrError, match="closed"):
            call()


def test_integers_ctypes_would_wrap_are_refused(tied):
    """ctypes keeps the low 32 bits of a Python int: 2**32 + 49 would be 49."""
    with pytest.raises(ValueError, match="threads"):
        qrr.Reranker(tied, threads=2**32)
    with qrr.Reranker(tied) as model:
        for max_length in (2**32 + 49, 2**32, 2**31, 1000001):
            with pytest.raises(ValueError, match=r"max_length must be an int in \[1, 1000000\]"):
                model.predict(("q", "d"), max_length=max_length)
        assert model.decode([9707]) == "Hello"
        with pytest.raises(ValueError, match=r"ids\[1\] = 4294977003"):
            model.decode([9707, 2**32 + 9707])
        with pytest.raises(qrr.QrrError, match="2147483647 at position 0 is not a token"):
            model.decode([2**31 - 1])


def test_int_arguments_take_numpy_integers_and_name_the_argument(tied):
    """Every int argument takes any integer (NumPy's too) and refuses a bool, a float or a
    str with a TypeError naming it (a bool is an int to Python, not a count)."""
    with qrr.Reranker(tied, threads=np.int64(1)) as model:
        pairs = [("q", "d"), ("q", "e")]
        want = model.predict(pairs, batch_size=1, max_length=64)
        got = model.predict(pairs, batch_size=np.int32(1), max_length=np.uint16(64))
        assert np.array_equal(got, want)
        assert model.score_grouped(pairs, batch_size=np.int64(1))[0].shape == (2,)
        assert len(model.rank("q", ["d", "e"], top_k=np.int8(1))) == 1
        calls = {"max_length": lambda v: model.predict(pairs, max_length=v),
                 "batch_size": lambda v: model.predict(pairs, batch_size=v),
                 "top_k": lambda v: model.rank("q", ["d"], top_k=v),
                 "threads": lambda v: qrr.Reranker(tied, threads=v)}
        for name, call in calls.items():
            for bad in (True, 1.0, "1", np.float32(1)):
                with pytest.raises(TypeError, match=f"^{name} must be an int, not "):
                    call(bad)


def test_paths_are_str_bytes_or_path_like(tied, tmp_path):
    with qrr.Reranker(os.fsencode(tied)) as model:
        assert model.path == tied and model.predict(("q", "d")) > 0
    odd = tmp_path / os.fsdecode(b"model-\xff.qrr")  # not UTF-8: as the file system spells it
    shutil.copy(tied, odd)
    with qrr.Reranker(odd) as model:
        assert model.path == str(odd) and model.predict(("q", "d")) > 0
    with pytest.raises(ValueError, match="NUL"):
        qrr.Reranker(tied + "\0junk")  # would open tied
    with pytest.raises(TypeError, match="path must be a str, bytes or os.PathLike, not NoneType"):
        qrr.Reranker(None)
    with pytest.raises(qrr.QrrError, match="nowhere.qrr: No such file"):
        qrr.Reranker(b"nowhere.qrr")


def test_reranker_cannot_be_pickled_or_copied(tied):
    with qrr.Reranker(tied) as model:
        for copy_it in (pickle.dumps, copy.copy):
            with pytest.raises(TypeError, match="holds an open model and cannot be pickled"):
                copy_it(model)


def test_convert_failure_names_the_file(tmp_path):
    src = tmp_path / "not-a-model"
    src.mkdir()
    with pytest.raises(qrr.QrrError) as e:
        qrr.convert(src, tmp_path / "out.qrr")
    assert "config.json" in str(e.value)
    assert not (tmp_path / "out.qrr").exists()


def without_library(binary: str, soname: bytes, tmp_path) -> str:
    """A copy of binary whose link to soname names a library no system has (its .so.9)."""
    data = open(binary, "rb").read()
    assert soname + b"\0" in data
    copy = tmp_path / os.path.basename(binary)
    copy.write_bytes(data.replace(soname + b"\0", soname[:-1] + b"9\0"))
    copy.chmod(0o755)
    return str(copy)


def test_a_missing_system_library_is_an_import_error_naming_it(tmp_path):
    """import qrr with a libqrr whose libxxhash cannot be found: an ImportError with the
    loader's own message and the Debian packages to install, not a raw ctypes OSError."""
    lib = without_library(os.path.realpath(qrr._capi.library_path()), b"libxxhash.so.0", tmp_path)
    done = subprocess.run([sys.executable, "-c", "import qrr"], capture_output=True, text=True,
                          env={**os.environ, "QRR_LIBRARY": lib})
    assert done.returncode == 1
    assert done.stderr.splitlines()[-2:] == [
        f"ImportError: qrr: cannot load {lib}: libxxhash.so.9: cannot open shared object "
        "file: No such file or directory",
        "HINT: install the Debian packages it needs: apt-get install libxxhash0 libutf8proc2 "
        "libpcre2-8-0 zlib1g"]
    # the loader's message for a library of the list names its package first
    hint = qrr._capi.missing_library_hint(
        "libutf8proc.so.2: cannot open shared object file: No such file or directory",
        qrr._capi.LIBRARY_PACKAGES)
    assert hint.startswith("HINT: libutf8proc.so.2 is in libutf8proc2; install the Debian")


def test_a_qrr_library_naming_no_file_says_so(tmp_path):
    """QRR_LIBRARY naming a file that is not there: the hint says so, not which Debian
    packages to install."""
    lib = tmp_path / "nowhere" / "libqrr.so"
    done = subprocess.run([sys.executable, "-c", "import qrr"], capture_output=True, text=True,
                          env={**os.environ, "QRR_LIBRARY": str(lib)})
    assert done.returncode == 1
    assert done.stderr.splitlines()[-2:] == [
        f"ImportError: qrr: cannot load {lib}: {lib}: cannot open shared object file: No such "
        "file or directory",
        "HINT: QRR_LIBRARY names a file that does not exist: unset it to use the library "
        "installed with the package, or point it at a built libqrr.so (build/libqrr.so after "
        "make)"]


def test_a_qconvert_that_cannot_run_is_a_qrr_error_naming_it(tmp_path, monkeypatch):
    """QRR_QCONVERT naming no file (127) or a file that is not executable (126), as a shell
    gives them: a QrrError naming the program and QRR_QCONVERT, not an OSError."""
    not_executable = tmp_path / "qconvert"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    for program, status, reason in ((tmp_path / "nowhere" / "qconvert", 127,
                                     "No such file or directory"),
                                    (not_executable, 126, "Permission denied")):
        monkeypatch.setenv("QRR_QCONVERT", str(program))
        with pytest.raises(qrr.QrrError) as e:
            qrr.convert(tmp_path, tmp_path / "out.qrr")
        assert (e.value.status, e.value.status_name) == (status, "cannot run qconvert")
        assert str(e.value) == (
            f"cannot run qconvert {program}: {reason}; QRR_QCONVERT names it: point it at a "
            "built qconvert (build/qconvert after make), or unset it to use the one installed "
            "with the package")
    assert not (tmp_path / "out.qrr").exists()


def test_a_qconvert_missing_a_system_library_names_its_package(tmp_path, monkeypatch):
    monkeypatch.setenv("QRR_QCONVERT", without_library(qrr._capi.qconvert_path(),
                                                       b"libjansson.so.4", tmp_path))
    with pytest.raises(qrr.QrrError) as e:
        qrr.convert(tmp_path, tmp_path / "out.qrr")
    assert e.value.status == 127
    assert "libjansson.so.9: cannot open shared object file" in str(e.value)
    assert str(e.value).endswith("HINT: install the Debian packages it needs: apt-get install "
                                 "libxxhash0 libutf8proc2 libpcre2-8-0 zlib1g libjansson4")


def test_no_bundled_library_says_how_to_install(tmp_path, monkeypatch):
    """Where the package has no bundled libqrr (an editable install) and QRR_LIBRARY is not
    set, the ImportError says how to install instead."""
    monkeypatch.delenv("QRR_LIBRARY", raising=False)
    with pytest.raises(ImportError) as e:
        qrr._capi._bundled("QRR_LIBRARY", tmp_path / "libqrr.so.0", ImportError)
    assert str(e.value) == (f"qrr: no libqrr.so.0 at {tmp_path / 'libqrr.so.0'} and QRR_LIBRARY "
                            "is not set: install the package with pip install ./python (an "
                            "editable install, pip install -e, has no bundled files), or set "
                            "QRR_LIBRARY")


def test_missing_ray_extra_names_what_to_install():
    """Without the [ray] extra (ray and pyarrow unimportable here, whether installed or
    not), `import qrr.ray` and a run of `python -m qrr.ray_rerank` say what to install; its
    --help needs no Ray."""
    without = "import sys; sys.modules.update(ray=None, pyarrow=None); "
    message = ('qrr.ray needs the [ray] extra (ray and pyarrow not installed): '
               'pip install "./python[ray]" from a qrr checkout')
    imported = subprocess.run([sys.executable, "-c", without + "import qrr.ray"],
                              capture_output=True, text=True)
    assert imported.returncode == 1
    assert imported.stderr.splitlines()[-1] == f"ImportError: {message}"
    as_main = "import runpy; runpy.run_module('qrr.ray_rerank', run_name='__main__', alter_sys=True)"
    usage = subprocess.run([sys.executable, "-c", without + as_main, "--help"],
                           capture_output=True, text=True)
    assert (usage.returncode, usage.stderr) == (0, "")
    assert usage.stdout.startswith("usage: python -m qrr.ray_rerank ")
    assert "--threads-per-actor" in usage.stdout
    cli = subprocess.run([sys.executable, "-c", without + as_main, "m.qrr", "in.jsonl",
                          "out.jsonl"], capture_output=True, text=True)
    assert (cli.returncode, cli.stdout, cli.stderr) == (2, "", f"qrr.ray_rerank: {message}\n")


def test_rank_names_its_own_arguments_and_verify_takes_a_bool(tied):
    """rank's errors name its arguments (query, document i), not the pairs it builds; a
    verify that is not a bool ("no" would be true) is refused."""
    with qrr.Reranker(tied, threads=1) as model:
        with pytest.raises(TypeError, match=r"^query must be a str, not int$"):
            model.rank(5, ["a"])
        with pytest.raises(TypeError, match=r"^document 1 must be a str, not dict$"):
            model.rank("q", ["a", {"text": "b"}])
    for bad in ("no", None, 2):
        with pytest.raises(TypeError, match="verify must be a bool"):
            qrr.Reranker(tied, verify=bad)
    for good in (False, 0, 1, np.bool_(True)):
        with qrr.Reranker(tied, threads=1, verify=good) as model:
            assert 0 <= model.predict(("q", "d")) <= 1


def test_every_flag_takes_a_bool_and_refuses_a_string(tied):
    """raw, truncate, show_progress_bar, return_documents and CrossEncoder's flags take
    bools (NumPy's too, and 0/1): a string such as "no" would be true, the opposite of what
    was asked, so it is a TypeError naming the argument."""
    with qrr.Reranker(tied, threads=1) as model:
        for name in ("raw", "truncate", "show_progress_bar", "apply_softmax",
                     "convert_to_numpy", "convert_to_tensor"):
            with pytest.raises(TypeError, match=rf"^{name} must be a bool"):
                model.predict([("q", "d")], **{name: "no"})
        for name in ("return_documents", "apply_softmax", "truncate"):
            with pytest.raises(TypeError, match=rf"^{name} must be a bool"):
                model.rank("q", ["d"], **{name: "no"})
        plain = model.predict([("q", "d")])
        assert model.predict([("q", "d")], truncate=np.True_, raw=np.False_) == plain
        assert model.predict([("q", "d")], show_progress_bar=None) == plain
        with pytest.raises(TypeError, match=r"^ids must be a sequence of int, not str$"):
            model.decode("abc")
        with pytest.raises(TypeError, match=r"^ids must be a sequence of int, not NoneType$"):
            model.decode(None)
        with pytest.raises(TypeError, match=r"^ids\[1\] must be an int, not float$"):
            model.decode([1, 1.0])
    with pytest.raises(TypeError, match=r"^device must be a str \('cpu' or 'cuda'\), not list$"):
        qrr.Reranker(tied, device=[])
