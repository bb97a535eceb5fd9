"""Independent references the tests compare fastaug against (Pillow for the policy ops; pure
PyTorch references of the kernels live in :mod:`fastaug.reference`). Importable from every test:
``tests/`` is on ``sys.path`` through its ``conftest.py``."""
