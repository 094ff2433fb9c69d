"""The Python API in a few lines (README "Python API"); tests/test_api.py runs this file.

Run it from any directory once vmexp is installed (pip install .): results
land in ./outputs of that directory, as they would with python run.py.
The runs are kept short (duration, figures=false) so that it takes seconds.
"""

import vmexp
from vmexp.compare import compare, render

# One run: the same overrides as on the command line (python run.py threshold=64k nprocs=2 ...).
run = vmexp.run(["threshold=64k", "nprocs=2", "duration=0.5s", "figures=false"])
print("run directory:", run.dir)
print(
    run.processes[["pid", "name", "minflt", "majflt", "brk", "mmap", "rss_peak_bytes"]].to_string(index=False)
)

# The machine over time: free memory, sampled every sample_interval (pid 0 is the system).
system = run.timeseries[run.timeseries["pid"] == 0]
print(f"free memory: {system['free_bytes'].min() / 2**20:.1f} MiB at its lowest")

# Every mmap the allocator made, as strace would list them.
mmaps = run.syscalls[run.syscalls["syscall"] == "mmap"]
print(f"{len(mmaps)} mmap calls, {mmaps['length'].sum() / 2**20:.1f} MiB in all")

# A sweep (python run.py -m ...): returns once summary.csv, the figures and the report are written.
sw = vmexp.sweep(["threshold=64k,128k,256k", "nprocs=2", "duration=0.2s", "figures=false"])
print(sw.summary[["threshold", "status", "syscalls", "mmap", "brk", "minflt"]].to_string(index=False))

# Anything on disk loads back: a run directory as a Run, a sweep directory as a Sweep.
again = vmexp.load(run.dir)
assert again.metrics == run.metrics
print("sweep jobs:", [r.dir.name for r in vmexp.load(sw.dir).runs])

# Two runs side by side (python -m vmexp.compare A B prints the same and draws a figure).
print(render(compare(sw.runs[0].dir, sw.runs[-1].dir)))
