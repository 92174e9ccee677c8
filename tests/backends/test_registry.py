"""Which backends load, which one is used, and what happens when one cannot load."""

import os
import subprocess
import sys

import pytest

import pyrnn
from pyrnn import backends


def _python(code, **env):
    full = dict(os.environ)
    full.pop("PYRNN_BACKEND", None)
    full.update(env)
    return subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_all_three_backends_load_after_install():
    assert pyrnn.available_backends() == ["cpp", "numba", "numpy"]


def test_default_is_the_fastest_and_import_is_quiet():
    r = _python("import pyrnn; print(pyrnn.get_backend())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "cpp"


@pytest.mark.parametrize("name", ["numba", "numpy", "cpp"])
def test_environment_variable_picks_the_backend(name):
    r = _python("import pyrnn; print(pyrnn.get_backend())", PYRNN_BACKEND=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match=r"unknown backend 'cuda': expected one of \['cpp', 'numba', 'numpy'\]"):
        pyrnn.set_backend("cuda")
    r = _python("import pyrnn; pyrnn.get_backend()", PYRNN_BACKEND="cuda")
    assert r.returncode != 0 and "unknown backend 'cuda'" in r.stderr


def test_use_backend_restores_the_previous_one():
    before = pyrnn.get_backend()
    with pyrnn.use_backend("numpy"):
        assert pyrnn.get_backend() == "numpy"
    assert pyrnn.get_backend() == before


def test_a_backend_that_fails_to_load_falls_back_with_a_warning():
    """Block the compiled module: `import pyrnn` still works, cpp is skipped with a warning."""
    code = (
        "import sys, warnings\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyrnn._C': raise ImportError('simulated: no compiled module')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pyrnn\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    print(pyrnn.available_backends(), pyrnn.get_backend())\n"
        "print([str(x.message) for x in w])\n"
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.strip().splitlines()
    assert first == "['numba', 'numpy'] numba"
    assert "backend 'cpp' is unavailable" in second and "simulated: no compiled module" in second


def test_set_backend_on_a_failed_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(backends._MODULES, "numba", "pyrnn.backends._does_not_exist")
    monkeypatch.setattr(backends, "_loaded", {k: v for k, v in backends._loaded.items() if k != "numba"})
    monkeypatch.setattr(backends, "_failed", {})
    with pytest.warns(RuntimeWarning, match="backend 'numba' is unavailable"):
        with pytest.raises(RuntimeError, match=r"backend 'numba' failed to load"):
            pyrnn.set_backend("numba")


def test_use_backend_is_per_thread():
    """A use_backend block in one thread (e.g. a predict helper) does not switch another thread's kernels."""
    import threading

    default = pyrnn.get_backend()
    inside, leave, seen = threading.Event(), threading.Event(), {}

    def other():
        with pyrnn.use_backend("numpy"):
            seen["other"] = pyrnn.get_backend()
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    seen["main"] = pyrnn.get_backend()
    leave.set()
    t.join()
    assert seen == {"other": "numpy", "main": default}
    with pyrnn.use_backend("numpy"):
        with pyrnn.use_backend("numba"):
            assert pyrnn.get_backend() == "numba"
        assert pyrnn.get_backend() == "numpy"
    assert pyrnn.get_backend() == default
