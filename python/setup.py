"""setup.py — the build step pyproject.toml cannot say: run the repository's Makefile (the
directory above this one, or $QRR_SOURCE_DIR) to build libqrr.so and qconvert, and put both
into the package as qrr/_lib/. The version is the C header's.

Knobs (environment): QRR_CUDA=0 (default: the library alone, CPU only) or 1 (the CUDA module,
libqrr_cuda.so.0, beside it, for device="cuda"; libqrr itself never links CUDA);
QRR_MAKE_JOBS (default 2); CC.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1: the wheel package's, if it is there
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:
        bdist_wheel = None

HERE = Path(__file__).resolve().parent
REPO = Path(os.environ.get("QRR_SOURCE_DIR") or HERE.parent).resolve()


def version() -> str:
    header = REPO / "include" / "qrr.h"
    if not header.exists():
        raise SystemExit(f"qrr: {header} not found: build from a qrr checkout "
                         "(pip install ./python) or set QRR_SOURCE_DIR to one")
    return re.search(r'QRR_VERSION_STRING "([^"]+)"', header.read_text()).group(1)


class BuildWithLibqrr(build_py):
    """build_py, then libqrr.so and qconvert built by make and copied into qrr/_lib/."""

    def run(self) -> None:
        super().run()
        cuda = os.environ.get("QRR_CUDA", "0")
        if cuda not in ("0", "1"):
            raise SystemExit(f"qrr: QRR_CUDA must be 0 or 1, not {cuda!r}")
        build = "build/python-cuda" if cuda != "0" else "build/python"
        jobs = os.environ.get("QRR_MAKE_JOBS", "2")
        module = [f"{build}/libqrr_cuda.so.0"] if cuda != "0" else []
        subprocess.run(["make", "-C", str(REPO), f"-j{jobs}", f"BUILD={build}", f"CUDA={cuda}",
                        f"{build}/libqrr.so", f"{build}/qconvert", *module], check=True)
        dest = Path(self.build_lib) / "qrr" / "_lib"
        # pip may build in a folder an earlier build used: a CUDA module left there by a
        # QRR_CUDA=1 build must not ship in a CPU-only one
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        shutil.copy2(os.path.realpath(REPO / build / "libqrr.so"), dest / "libqrr.so.0")
        shutil.copy2(REPO / build / "qconvert", dest / "qconvert")
        for path in module:  # libqrr looks for it beside itself
            shutil.copy2(REPO / path, dest / Path(path).name)


class BinaryDistribution(Distribution):
    """The wheel holds a shared library: tag it for this platform."""

    def has_ext_modules(self) -> bool:
        return True


COMMANDS = {"build_py": BuildWithLibqrr}
if bdist_wheel is not None:
    class AnyPythonWheel(bdist_wheel):
        """py3-none-PLATFORM: the library is loaded with ctypes, not built against CPython,
        so the wheel suits any Python 3 on this platform."""

        def get_tag(self):
            return ("py3", "none", super().get_tag()[2])

    COMMANDS["bdist_wheel"] = AnyPythonWheel

setup(version=version(), cmdclass=COMMANDS, distclass=BinaryDistribution)
