"""Benchmark: `make demo` end to end, the wall time of each step.

Runs :func:`utils.demo.driver.run` (the whole facies chain sized to this machine's
measured speed, then the outline, rock-glacier and mass-balance demos) into a
fresh folder, and prints the CPU, whether it has AVX-512 (``avx512f`` in
``/proc/cpuinfo``), the load average before the run and, as its last line, one JSON
object with each step's seconds, the total and the demo's plan (measured ms per
training patch, size, epochs, predicted training seconds).

Run: ``.venv/bin/python -m benchmarks.bench_demo [--out DIR]`` (default: a temporary
folder, removed afterwards). The goal is a total of at most 900 s on a 2-core CPU
without AVX-512.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.demo import driver  # noqa: E402


def cpu() -> dict:
    """CPU model, core count and AVX-512 flag of this machine (Linux)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                  if ln.startswith("model name")), "unknown")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines()
                  if ln.startswith("flags")), [])
    return {"cpu": model, "cores": os.cpu_count(), "avx512f": "avx512f" in flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="demo folder (default: a temporary one)")
    args = parser.parse_args()
    machine = {**cpu(), "load_before": round(os.getloadavg()[0], 1)}
    print(f"machine: {machine}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "demo"
        times = driver.run(out.resolve())
        plan = json.loads((out / "plan.json").read_text())
    result = {**machine, "load_after": round(os.getloadavg()[0], 1), **plan,
              **{f"{k}_s": v for k, v in times.items()}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
