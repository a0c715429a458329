"""A process that trains or infers on the CPU keeps the memory it frees, for the next iteration.

glibc hands every block above its mmap threshold (32 MiB at most) back to the kernel when it is
freed, and trims its heap, so each CPU iteration faults in, and the kernel zeroes, its large
activations and gradients again: about 85,000 page faults and 110 ms of system time in
FCN-AlexNet's 1.1 s forward+backward at 500x500. Caffe allocates its blobs once; torch's CUDA
allocator caches. `retain_freed_memory` tells glibc to serve large blocks from its heap and never
trim it, so after the first few iterations each reuses the previous one's pages; the process
keeps its peak footprint (+320 MB resident on that net). Once per process: when a graph is
recorded on the CPU, and in the processes that run a net image after image (`digitslite infer`,
an inference job's worker), whose every forward would fault in its activations again; the job
server itself never calls it. Without glibc's mallopt (musl, macOS) it does nothing.
"""
import ctypes
import functools

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4     # glibc's malloc.h
_NEVER = 2**31 - 1


@functools.cache
def retain_freed_memory() -> bool:
    """Whether glibc now keeps freed memory in the process (False where there is no mallopt)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
