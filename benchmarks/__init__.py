"""fastaug microbenchmarks: each ``bench_<family>.py`` compares a kernel with the stock composition."""
import os
import sys

# The allocator settings every timing runs with (harness.keep_freed_memory sets the glibc ones in the
# running process through mallopt; compare_builds hands them all to its children as their environment):
# glibc keeps freed memory (mmap threshold 1 GiB, trim threshold 2 GiB - 1) and has no fastbins (a small
# chunk parked in one next to a freed large block keeps the block from being reused), torch uses huge pages.
MMAP_THRESHOLD, TRIM_THRESHOLD = 1 << 30, (1 << 31) - 1
KEPT_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
                   "GLIBC_TUNABLES": "glibc.malloc.mxfast=0", "THP_MEM_ALLOC_ENABLE": "1"}

# PyTorch's CPU allocator backs tensors of 2 MiB and more with transparent huge pages when this is set
# before torch loads (c10 reads it once): a large tensor the allocator has to fault in then costs one
# fault per 2 MiB instead of one per 4 KiB (harness.keep_freed_memory has glibc reuse the blocks). Only
# when torch is not loaded yet (``python -m benchmarks.run``), and never over a value the environment
# already gives (THP_MEM_ALLOC_ENABLE=0 keeps it off).
if "torch" not in sys.modules:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", KEPT_MEMORY_ENV["THP_MEM_ALLOC_ENABLE"])
