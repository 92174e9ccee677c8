import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py

from helpers import cpp_team  # noqa: E402


@pytest.fixture
def cpp_team_on_small_shapes():
    """The C++ kernels split even small convolutions over their thread team (nothing without the cpp backend)."""
    import pyrnn

    if "cpp" not in pyrnn.available_backends():
        yield
        return
    from pyrnn import _C

    with cpp_team(_C.get_num_threads()):
        yield
