"""``python -m fastaug <command>``: same as ``python -m fastaug.cli``."""
import sys

from .cli import main

sys.exit(main())
