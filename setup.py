"""Build of the pybind11 extension pyrnn._C (everything else is in pyproject.toml).

Flags target baseline x86-64 (no -march=native): the module runs on any
x86-64; per-ISA fast paths are chosen at run time (see the performance issue).
"""

import glob
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

# -fno-math-errno and -fno-trapping-math change no result; they let the pointwise loops vectorise.
extra = [] if sys.platform == "win32" else ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra"]

ext = Pybind11Extension(
    "pyrnn._C",
    sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/*/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
    extra_compile_args=extra,
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
