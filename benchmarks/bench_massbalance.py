"""Benchmark: the real ceiling of the WGMS regression, and the mass-balance demo.

1. The real ceiling: annual WGMS balance regressed on WGMS's own observed AAR and ELA
   over all glacier-years that have both (FoG 2021-05 overview + OGGM's ``mbdata``),
   pooled leave-one-glacier-out and glacier-specific leave-one-year-out (glaciers with
   >= 5 years). Needs the WGMS folder (default ``../shared/data/wgms``); skipped with a
   note when it is absent.
2. The demo: one end-of-season scene per year whose demo glaciers' true AAR is a real
   WGMS glacier-year's (``utils.demo.years``), mapped with ``apply.py``'s code path and a
   facies model of the demo (:func:`utils.massbalance.demo.map_demo_years`; default the
   fold-0 model ``make demo`` trains), then :func:`utils.massbalance.run_demo`: r and
   RMSE with the mapped AAR and with the true AAR of the same glacier-years, and their
   ratio. Without the model, the stand-in class maps (plumbing only), with a note.

Prints tables, then as its last line one JSON object with every number, the CPU, whether
it has AVX-512 and the date.

Run: ``.venv/bin/python -m benchmarks.bench_massbalance [--wgms DIR] [--model H5 --stats JSON]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.massbalance import run_demo  # noqa: E402
from utils.massbalance.demo import map_demo_years  # noqa: E402
from utils.massbalance.run import real_ceiling  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def cpu() -> tuple[str, bool]:
    """(model name, has avx512f) from /proc/cpuinfo ('unknown' elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown", False
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                 if ln.startswith("model name")), "unknown")
    return name, " avx512f" in text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wgms", default=str(ROOT.parent / "shared" / "data" / "wgms"))
    ap.add_argument("--model", default=str(ROOT / "demo" / "weights" /
                                           "0_cnn_afterconfidentlearning_weights.h5"),
                    help="facies model (.h5) that maps the demo scenes (default: make demo's)")
    ap.add_argument("--stats", default=str(ROOT / "demo" / "data" / "stats.json"),
                    help="its normalisation statistics (default: make demo's)")
    a = ap.parse_args(argv)
    name, avx512 = cpu()
    result: dict = {"cpu": name, "avx512f": avx512, "date": datetime.date.today().isoformat()}
    if Path(a.wgms).is_dir():
        t = time.perf_counter()
        evs, dropped = real_ceiling(a.wgms)
        result["ceiling_s"] = round(time.perf_counter() - t, 2)
        result["ceiling_dropped_rows"] = len(dropped)
        print("Real ceiling (WGMS's own AAR / ELA), out of sample:")
        for ev in evs:
            p = ev.predictors[0]
            for s in ("pooled_logo", "specific_loyo"):
                sc = ev.scores.loc[s]
                print(f"  {p:6s} {s:14s} n={sc['n']:5.0f} glaciers={sc['n_glaciers']:4.0f} "
                      f"r={sc['r']:.3f} RMSE={sc['rmse_mwe']:.3f} m w.e. "
                      f"bias={sc['bias_mwe']:+.4f} p={sc['p_value']:.2g}")
                for k in ("n", "n_glaciers", "r", "rmse_mwe", "bias_mwe"):
                    result[f"ceiling_{p}_{s}_{k}"] = round(float(sc[k]), 4)
            result[f"ceiling_{p}_median_glacier_r"] = round(
                float(ev.scores.loc["specific_loyo", "median_glacier_r"]), 4)
            print(f"  {p:6s} median per-glacier r (leave one year out) = "
                  f"{result[f'ceiling_{p}_median_glacier_r']:.3f}")
    else:
        print(f"{a.wgms} is absent: real ceiling skipped")
    mapped = Path(a.model).is_file() and Path(a.stats).is_file()
    if not mapped:
        print(f"{a.model} or {a.stats} is absent (run make demo): the demo uses stand-in "
              "class maps, which check the plumbing only")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        csvs = map_demo_years(Path(tmp), a.model, a.stats) if mapped else None
        demo = run_demo(Path(tmp), stats_csvs=csvs)
        result["demo_s"] = round(time.perf_counter() - t, 2)
    result["demo_model"] = a.model if mapped else None
    print(f"Demo ({demo['glaciers']} glaciers, {demo['glacier_years']} glacier-years; mapped with "
          f"{Path(a.model).name if mapped else demo['mapped_with']}; "
          f"mean |mapped - true AAR| {demo['aar_mae']:.3f}):")
    for s in ("pooled_logo", "specific_loyo"):
        print(f"  {s:14s} mapped AAR r={demo[f'mapped_{s}_r']:.3f} "
              f"RMSE={demo[f'mapped_{s}_rmse_mwe']:.3f}; true AAR r={demo[f'true_{s}_r']:.3f} "
              f"RMSE={demo[f'true_{s}_rmse_mwe']:.3f} m w.e.; ratio of r "
              f"{demo[f'ratio_{s}_r']:.4f}")
    result.update({f"demo_{k}": (round(v, 4) if isinstance(v, float) else v)
                   for k, v in demo.items() if k != "results"})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
