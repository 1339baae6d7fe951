"""The peak resident memory of a benchmark's child process, as that child itself reports it.

Linux keeps `ru_maxrss` across fork and exec, so a child started by a large parent (the benchmark driver after an
in-process import, the GUI) reports its parent's peak: the foundation benchmark printed 1.3 GB for an overview that
takes 250 MB, and the drift benchmark 2.3 GB for every run. `VmHWM` in /proc/self/status belongs to the process
image alone; ru_maxrss stays the fallback where there is no /proc.
"""

# Defines _lineproof_peak_mb() in a child's code.
PEAK_FUNCTION = """
def _lineproof_peak_mb():
    try:
        with open('/proc/self/status') as f:
            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""
# Appended to a child's code: prints "PEAK <MB>" as its last line.
PRINT_PEAK = PEAK_FUNCTION + "print('PEAK', _lineproof_peak_mb())\n"


def peak_of(stdout: str) -> float:
    """The MB a child printed with PRINT_PEAK."""
    return next(float(line.split()[1]) for line in stdout.splitlines() if line.startswith("PEAK "))


def without_peak(stdout: str) -> str:
    """The child's output without its PEAK line."""
    return "\n".join(line for line in stdout.splitlines() if not line.startswith("PEAK "))
