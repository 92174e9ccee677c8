"""Build of the compiled extensions (everything else is in pyproject.toml):

- ``pyrnn._C``: the C++ kernels (pybind11);
- ``pyrnn.timeseries._gather``: the window gather (Cython, typed memoryviews); its
  generated C file goes to ``build/``, not next to the ``.pyx``.

Flags target baseline x86-64 (no -march=native): the module runs on any
x86-64. The recurrent time loops are compiled three times (csrc/recurrent/isa_*.cpp:
SSE2, AVX2 + FMA, AVX-512, each through ``#pragma GCC target``) and the widest the CPU
supports is chosen at run time.
"""

import glob
import sys

from Cython.Build import cythonize
from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import Extension, setup

# -fno-math-errno and -fno-trapping-math change no result; they let the pointwise loops vectorise.
# -ffp-contract=fast lets a * b + c become one fused multiply-add where the ISA has one (the
# AVX2/AVX-512 micro-kernels), rounding once instead of twice.
extra = [] if sys.platform == "win32" else ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast",
                                            "-Wall", "-Wextra"]

ext = Pybind11Extension(
    "pyrnn._C",
    sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/*/*.cpp")),
    include_dirs=["csrc"],
    # headers and the per-ISA .inc bodies: a change to any of them rebuilds the module
    depends=sorted(glob.glob("csrc/**/*.h", recursive=True) + glob.glob("csrc/**/*.inc", recursive=True)),
    cxx_std=17,
    extra_compile_args=list(extra),  # a copy: Pybind11Extension appends its C++ flags to the list it gets
)

gather = Extension("pyrnn.timeseries._gather", ["src/pyrnn/timeseries/_gather.pyx"], extra_compile_args=extra)
cython_exts = cythonize([gather], compiler_directives={"language_level": 3}, build_dir="build", quiet=True)

setup(ext_modules=[ext, *cython_exts], cmdclass={"build_ext": build_ext})
