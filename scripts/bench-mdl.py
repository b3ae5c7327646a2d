#!/usr/bin/env python3
"""Driver of scripts/bench-mdl (Cerebras .mdl read, inspect and write against h5py + hdf5plugin), and its anchors.

    bench-mdl.py [--rounds N] [--warmup N] [--inspect-runs N] [--json]
    bench-mdl.py --read-anchor SRC          the read anchor: h5py + hdf5plugin, every dataset into numpy
    bench-mdl.py --write-anchor SRC OUT REPORT
                                            the write anchor: the canonical file's tensors (read with safetensors'
                                            numpy loader, not timed) written with h5py + hdf5plugin LZ4 in the
                                            saver's layout; the time of the writing alone goes to REPORT

Run through scripts/bench-mdl, which prepares the environment (BENCH_DIR, BENCH_DITKIT, BENCH_PYTHON, BENCH_MDL).
See the header of scripts/bench-mdl for what is measured and how.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent

READ_SPEEDUP_TARGET = 2.0     # ditkit reading every tensor at least 2x faster than h5py reading into numpy
RSS_TARGET_MIB = 256.0        # ditkit peak RSS converting, whatever the checkpoint size
INSPECT_TARGET_MS = 50.0      # ditkit inspect of the same file
WRITE_RATIO_TARGET = 1.0      # ditkit canonical -> .mdl no slower than h5py writing the same tensors (LZ4)


def _bench_convert():
    """scripts/bench-convert.py as a module: the same launcher, runner and helpers."""
    spec = importlib.util.spec_from_file_location("bench_convert", HERE / "bench-convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------
# Anchors (child processes of the benchmark)
# --------------------------------------------------------------------------------------------------

def read_anchor(src: str) -> int:
    import h5py
    import hdf5plugin  # noqa: F401  (registers the LZ4 filter)

    total = 0
    with h5py.File(src, "r") as f:
        def visit(name, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset) and obj.shape is not None:
                array = obj[()]
                total += getattr(array, "nbytes", 0)
        f.visititems(visit)
    print(total)
    return 0


def write_anchor(src: str, out: str, report: str) -> int:
    import h5py
    import hdf5plugin
    from safetensors.numpy import load_file

    tensors = load_file(src)                      # not timed: the anchor's write alone is measured
    t0 = time.perf_counter()
    with h5py.File(out, "w") as f:
        for name, array in tensors.items():
            if array.ndim == 0:
                f.create_dataset(name, data=array)
            else:
                f.create_dataset(name, data=array, chunks=True, **hdf5plugin.LZ4())
        f.attrs["__SUCCESS__"] = True
    elapsed = (time.perf_counter() - t0) * 1000.0
    with open(report, "w") as r:
        r.write(f"{elapsed}\n")
    return 0


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------

def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "--read-anchor":
        return read_anchor(sys.argv[2])
    if len(sys.argv) >= 2 and sys.argv[1] == "--write-anchor":
        return write_anchor(sys.argv[2], sys.argv[3], sys.argv[4])

    ap = argparse.ArgumentParser(prog="bench-mdl")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--inspect-runs", type=int, default=21)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    bc = _bench_convert()
    bench_dir = os.environ["BENCH_DIR"]
    ditkit = os.environ["BENCH_DITKIT"]
    py = os.environ["BENCH_PYTHON"]
    mdl = os.environ["BENCH_MDL"]
    out_dir = os.path.join(bench_dir, "out-mdl")
    os.makedirs(out_dir, exist_ok=True)
    runner = bc.Runner(bench_dir)
    log = lambda m: print(f"bench-mdl: {m}", file=sys.stderr, flush=True)  # noqa: E731

    canonical = os.path.join(out_dir, "xlarge.safetensors")
    back = os.path.join(out_dir, "back.mdl")
    anchor_out = os.path.join(out_dir, "anchor.h5")
    anchor_report = os.path.join(out_dir, "anchor-write-ms")
    runs = {k: [] for k in ("ditkit read", "h5py read", "ditkit convert", "cp", "ditkit write", "h5py write")}
    copy = os.path.join(out_dir, "copy.mdl")
    anchor_write_ms = []

    def read_round(record: bool):
        # Reading alone, both sides decoding every tensor into memory and writing nothing: ditkit inspect
        # --check-data against h5py reading every dataset into numpy.
        bc.warm(mdl)
        r1 = runner.run([ditkit, "inspect", mdl, "--check-data", "--summary"])
        bc.warm(mdl)
        r2 = runner.run([py, str(HERE / "bench-mdl.py"), "--read-anchor", mdl])
        # The conversion, which also writes the 2.7 GB canonical file, beside cp of the .mdl (the disk's own cost).
        bc.remove(canonical)
        os.sync()
        bc.warm(mdl)
        r3 = runner.run([ditkit, "convert", mdl, "-o", canonical, "--to", "canonical", "--force", "--quiet"])
        bc.remove(copy)
        os.sync()
        bc.warm(mdl)
        r4 = runner.run(["cp", mdl, copy])
        bc.remove(copy)
        os.sync()
        if record:
            runs["ditkit read"].append(r1)
            runs["h5py read"].append(r2)
            runs["ditkit convert"].append(r3)
            runs["cp"].append(r4)

    def write_round(record: bool):
        bc.remove(back)
        bc.warm(canonical)
        r1 = runner.run([ditkit, "convert", canonical, "-o", back, "--to", "cerebras", "--container", "mdl", "--force",
                         "--quiet"])
        bc.remove(back)
        bc.remove(anchor_out)
        os.sync()
        bc.warm(canonical)
        r2 = runner.run([py, str(HERE / "bench-mdl.py"), "--write-anchor", canonical, anchor_out, anchor_report])
        bc.remove(anchor_out)
        os.sync()
        if record:
            runs["ditkit write"].append(r1)
            runs["h5py write"].append(r2)
            anchor_write_ms.append(float(open(anchor_report).read()))

    for w in range(args.warmup):
        read_round(False)
        write_round(False)
        log(f"warm-up {w + 1}/{args.warmup}")
    for r in range(args.rounds):       # interleaved: ditkit read, h5py read, ditkit write, h5py write, ...
        read_round(True)
        write_round(True)
        log(f"round {r + 1}/{args.rounds}")

    inspect, inspect_json = [], []
    for _ in range(args.inspect_runs):    # interleaved: what a user types, and the JSON listing
        inspect.append(runner.run([ditkit, "inspect", mdl]))
        inspect_json.append(runner.run([ditkit, "inspect", mdl, "--json"]))

    med = {k: bc.summarize(v) for k, v in runs.items()}
    speedup = med["h5py read"]["median_wall_ms"] / med["ditkit read"]["median_wall_ms"]
    inspect_ms = statistics.median(x["wall_ms"] for x in inspect)
    inspect_json_ms = statistics.median(x["wall_ms"] for x in inspect_json)
    write_vs_anchor_total = med["ditkit write"]["median_wall_ms"] / med["h5py write"]["median_wall_ms"]
    write_vs_anchor_write = med["ditkit write"]["median_wall_ms"] / statistics.median(anchor_write_ms)
    summary = {
        "source": mdl, "source_bytes": bc.size_of(mdl), "rounds": args.rounds, "warmup": args.warmup,
        "tools": med, "inspect_median_ms": inspect_ms, "inspect_runs": [x["wall_ms"] for x in inspect],
        "inspect_json_median_ms": inspect_json_ms,
        "h5py_write_only_median_ms": statistics.median(anchor_write_ms),
        "read_speedup_vs_h5py": speedup,
        "write_ratio_to_h5py_write_only": write_vs_anchor_write,
        "write_ratio_to_h5py_process": write_vs_anchor_total,
        "targets": {"read_speedup": READ_SPEEDUP_TARGET, "peak_rss_mib": RSS_TARGET_MIB,
                    "inspect_ms": INSPECT_TARGET_MS, "write_ratio": WRITE_RATIO_TARGET},
    }
    summary["convert_speedup_vs_h5py_read"] = med["h5py read"]["median_wall_ms"] / med["ditkit convert"]["median_wall_ms"]
    summary["convert_ratio_to_cp"] = med["ditkit convert"]["median_wall_ms"] / med["cp"]["median_wall_ms"]
    summary["targets_met"] = {
        "read_speedup": speedup >= READ_SPEEDUP_TARGET,
        "peak_rss": max(med["ditkit read"]["median_peak_rss_mib"], med["ditkit convert"]["median_peak_rss_mib"]) <= RSS_TARGET_MIB,
        "inspect": inspect_ms <= INSPECT_TARGET_MS,
        "write": write_vs_anchor_write <= WRITE_RATIO_TARGET,
    }
    for m in med.values():
        m.pop("runs", None)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"source {mdl} ({summary['source_bytes'] / 1e9:.2f} GB), {args.rounds} rounds interleaved "
          f"(+{args.warmup} warm-up), medians")
    print(f"{'tool':<14} {'median wall':>12} {'peak RSS':>12}")
    for name, m in med.items():
        print(f"{name:<14} {m['median_wall_ms'] / 1000:>10.2f} s {m['median_peak_rss_mib']:>8.1f} MiB")
    print(f"h5py write (the writing alone, in-process): {summary['h5py_write_only_median_ms'] / 1000:.2f} s")
    ok = lambda b: "met" if b else "NOT MET"  # noqa: E731
    t = summary["targets_met"]
    print(f"read (every tensor decoded, nothing written): ditkit {speedup:.2f}x faster than h5py "
          f"(target >= {READ_SPEEDUP_TARGET}x: {ok(t['read_speedup'])})")
    print(f"convert to canonical (2.7 GB written): {summary['convert_speedup_vs_h5py_read']:.2f}x faster than h5py's read "
          f"alone, {summary['convert_ratio_to_cp']:.2f}x cp of the .mdl; peak RSS "
          f"{med['ditkit convert']['median_peak_rss_mib']:.1f} MiB (<= {RSS_TARGET_MIB:.0f}: {ok(t['peak_rss'])})")
    print(f"inspect: {inspect_ms:.1f} ms median of {args.inspect_runs} (<= {INSPECT_TARGET_MS:.0f} ms: {ok(t['inspect'])}); "
          f"inspect --json {inspect_json_ms:.1f} ms")
    print(f"write: ditkit / h5py writing alone {write_vs_anchor_write:.2f}x, / h5py process "
          f"{write_vs_anchor_total:.2f}x (target <= {WRITE_RATIO_TARGET}x of the writing alone: {ok(t['write'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
