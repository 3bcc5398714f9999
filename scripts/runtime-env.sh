# Sourced by ./rscapret and bench/run: the process environment the product runs under, so benchmarks measure
# what users run.
# libtorch allocates every activation afresh; glibc serves blocks over 32 MB (a batch of 16 at 224 px makes 51 MB)
# with mmap, so each forward faults in and zeroes them again. Keeping freed memory in the heap instead measured
# 41 against 29-35 images/s for the ResNet at batch 16 (bench encoder; docs/benchmarks.md). The caller's own
# GLIBC_TUNABLES win.
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967296}"
