"""Packaging without a compile: the sdist holds every file the build reads, and a build that cannot
see torch (pip's isolated build) stops with one sentence instead of a traceback.

Both run setuptools' PEP 517 hooks (``setuptools.build_meta``, what pip and ``python -m build`` call)
on a copy of the source tree, with ``import torch`` made to fail as it does in an isolated build."""
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                "*.so", "_built_with.py", "runs", "out", "*.png")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A copy of the source tree (without build outputs) and a folder whose ``torch`` cannot be imported."""
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    blocker = base / "no_torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    return src, base / "no_torch"


def _hook(tree, code, *args):
    """Run ``code`` (which may call ``build_meta``'s hooks) in the copied tree with torch hidden."""
    src, no_torch = tree
    env = dict(os.environ, PYTHONPATH=str(no_torch))
    prelude = "import sys; from setuptools import build_meta; "
    return subprocess.run([sys.executable, "-c", prelude + code, *args], cwd=src, env=env,
                          capture_output=True, text=True, timeout=300)


def _files_under(folder):
    out = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, folder)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        out |= {os.path.relpath(os.path.join(dirpath, f), ROOT) for f in filenames if not f.endswith((".pyc", ".so"))}
    return out


def test_the_sdist_builds_without_torch_and_holds_every_file_the_build_reads(tree, tmp_path):
    res = _hook(tree, "print(build_meta.build_sdist(sys.argv[1]))", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    name = res.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as tar:
        top = name[:-len(".tar.gz")]
        shipped = {os.path.relpath(m.name, top) for m in tar.getmembers() if m.isfile()}
    needed = _files_under("csrc") | _files_under("buildtools") | _files_under("fastaug")
    needed -= {os.path.join("fastaug", "_built_with.py")}
    needed |= {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in"}
    assert any(f.endswith(".h") for f in needed) and any(f.endswith(".cu") for f in needed)  # the walk found them
    missing = sorted(needed - shipped)
    assert not missing, f"the sdist lacks {missing}: add them to MANIFEST.in"
    stray = sorted(f for f in shipped if f.endswith((".so", ".o", ".pyc")) or f.endswith("_built_with.py"))
    assert not stray, f"the sdist ships build outputs {stray}"


def test_metadata_steps_run_without_torch_so_pip_reaches_the_build(tree, tmp_path):
    # one process per hook, as pip calls them
    res = _hook(tree, "print(build_meta.get_requires_for_build_wheel())")
    assert res.returncode == 0, res.stderr[-3000:]
    res = _hook(tree, "print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1].startswith("fastaug-0.1.0")


def test_a_build_that_cannot_see_torch_stops_with_one_sentence(tree, tmp_path):
    res = _hook(tree, "build_meta.build_wheel(sys.argv[1])", str(tmp_path))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    message = res.stderr.strip().splitlines()[-1]
    assert message.startswith("fastaug compiles its kernels against the torch installed in your environment")
    assert "pip install --no-build-isolation ." in message and message.count(". ") == 0  # one sentence
