"""fastaug microbenchmarks: each ``bench_<family>.py`` compares a kernel with the stock composition."""
