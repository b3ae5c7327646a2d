#!/usr/bin/env python3
"""Driver of scripts/bench-convert (times `ditkit convert` against cp and a Python anchor), and the anchor itself.

    bench-convert.py [--rounds N] [--warmup N] [--json] [--anchor-only] [--cerebras-2b | --all]
    bench-convert.py --anchor SRC OUT      the Python anchor: torch.load, diffusers' key mapping,
                                           DiTTransformer2DModel(...), load_state_dict, save_pretrained(safetensors)

Run through scripts/bench-convert, which prepares the environment (BENCH_DIR, BENCH_DITKIT, BENCH_PYTHON,
BENCH_XL2). See the header of scripts/bench-convert for what is measured and how.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent

WALL_RATIO_TARGET = 1.5       # ditkit wall <= 1.5 x cp wall
RSS_TARGET_MIB = 256.0        # ditkit peak RSS, whatever the checkpoint size
GIB = 1024 ** 3


# --------------------------------------------------------------------------------------------------
# The anchor (a child process of the benchmark)
# --------------------------------------------------------------------------------------------------

def anchor(src: str, out: str) -> int:
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    sys.path.insert(0, str(HERE))
    import torch
    from diffusers import DiTTransformer2DModel

    import interop  # the re-implementation of diffusers' scripts/convert_dit_to_diffusers.py mapping

    sd = torch.load(src, map_location="cpu", weights_only=True)
    h = interop.original_hyperparameters(sd)
    mapped = interop.upstream_diffusers_mapping(sd)
    model = DiTTransformer2DModel(num_attention_heads=h["heads"], attention_head_dim=h["hidden"] // h["heads"],
                                  in_channels=h["in_channels"], out_channels=h["out_channels"],
                                  num_layers=h["depth"], patch_size=h["patch"], sample_size=h["sample_size"],
                                  num_embeds_ada_norm=h["num_classes"])
    model.load_state_dict(mapped, strict=True)
    model.save_pretrained(out, safe_serialization=True)
    return 0


# --------------------------------------------------------------------------------------------------
# Measurement (the same launcher as scripts/bench-inspect: its C source is shared byte for byte, so the
# compiled launcher in the bench dir is reused by both)
# --------------------------------------------------------------------------------------------------

LAUNCHER_C = r'''
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
/* usage: launcher REPORT CMD ARGS...  forks, execs CMD, wait4s it, writes "wall_ns maxrss_kib status" */
int main(int argc, char **argv) {
    if (argc < 3) return 125;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid < 0) return 126;
    if (pid == 0) { execvp(argv[2], argv + 2); _exit(127); }
    int st = 0; struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) return 126;
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ns = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *f = fopen(argv[1], "w");
    if (!f) return 126;
    fprintf(f, "%lld %ld %d\n", ns, ru.ru_maxrss, code);
    fclose(f);
    return code;
}
'''


def build_launcher(bench_dir: str):
    exe = os.path.join(bench_dir, "rss-launcher")
    src = exe + ".c"
    if os.path.exists(exe) and os.path.exists(src) and open(src).read() == LAUNCHER_C:
        return exe
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("clang") or shutil.which("gcc")
    if not cc:
        return None
    with open(src, "w") as f:
        f.write(LAUNCHER_C)
    r = subprocess.run([cc, "-O2", "-o", exe, src], capture_output=True, text=True)
    return exe if r.returncode == 0 else None


class Runner:
    def __init__(self, bench_dir: str):
        self.bench_dir = bench_dir
        self.launcher = build_launcher(bench_dir)

    def run(self, cmd):
        """One timed run: dict(wall_ms, rss_kib, launcher_wall_ms, launcher_rss_kib); raises on failure."""
        err = tempfile.TemporaryFile()
        report = os.path.join(self.bench_dir, f".report-{os.getpid()}")
        full = [self.launcher, report] + cmd if self.launcher else cmd
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                os.dup2(err.fileno(), 2)
                os.execv(full[0], full)
            finally:
                os._exit(127)
        _, status, ru = os.wait4(pid, 0)
        wall = (time.perf_counter() - t0) * 1000.0
        code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        msg = err.read().decode(errors="replace")[-2000:]
        err.close()
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{msg}")
        out = {"launcher_wall_ms": wall, "launcher_rss_kib": ru.ru_maxrss}
        if self.launcher:
            ns, rss, _ = open(report).read().split()
            os.remove(report)
            out.update(wall_ms=int(ns) / 1e6, rss_kib=int(rss))
        else:
            out.update(wall_ms=wall, rss_kib=ru.ru_maxrss)
        return out


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------

def log(msg: str):
    print(f"bench-convert: {msg}", file=sys.stderr, flush=True)


def size_of(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return 0


def remove(path: str):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def warm(path: str):
    """Reads the file once (cat > /dev/null) so every timed run starts with it in the page cache."""
    with open(path, "rb") as f, open(os.devnull, "wb") as null:
        shutil.copyfileobj(f, null, 16 << 20)


def free_bytes(path: str) -> int:
    return shutil.disk_usage(path).free


def need_space(where: str, nbytes: int, what: str):
    free = free_bytes(where)
    margin = 2 * GIB
    if free < nbytes + margin:
        raise SystemExit(f"bench-convert: not enough disk space in {where} for {what}: "
                         f"{free / GIB:.1f} GiB free, need {(nbytes + margin) / GIB:.1f} GiB (df -h {where})")


def subcommand_available(ditkit: str, sub: str) -> bool:
    if not (os.path.isfile(ditkit) and os.access(ditkit, os.X_OK)):
        return False
    r = subprocess.run([ditkit, sub, "--help"], capture_output=True, text=True)
    # an unknown subcommand followed by --help prints the ROOT help with status 0: look for the usage line
    return r.returncode == 0 and f"ditkit {sub}" in (r.stdout + r.stderr)


def cerebras_2b(ditkit: str, bench_dir: str) -> str:
    """`ditkit synth cerebras-dit-2B --layout cerebras -o c2b.pt`, once (cached with a stamp)."""
    path = os.path.join(bench_dir, "c2b.pt")
    stamp = path + ".stamp"
    if os.path.exists(path) and os.path.exists(stamp):
        try:
            info = json.load(open(stamp))
            if info.get("bytes") == os.path.getsize(path):
                log(f"cached: {path} ({info['bytes'] / 1e9:.2f} GB)")
                return path
        except ValueError:
            pass
    if not subcommand_available(ditkit, "synth"):
        raise SystemExit(f"bench-convert: {ditkit} has no `synth` subcommand yet; cannot create the Cerebras 2B "
                         "checkpoint")
    # 2,281,078,788 trainable + 2048*256 + 258,000 frozen numbers, f32
    need_space(bench_dir, 9_200_000_000, "the Cerebras 2B checkpoint (~9.2 GB)")
    tmp = os.path.join(bench_dir, "c2b-partial.pt")
    remove(tmp)
    log(f"ditkit synth cerebras-dit-2B --layout cerebras -o {path} (once) ...")
    t0 = time.time()
    r = subprocess.run([ditkit, "synth", "cerebras-dit-2B", "--layout", "cerebras", "-o", tmp], stdout=sys.stderr)
    if r.returncode != 0:
        remove(tmp)
        raise SystemExit(f"bench-convert: ditkit synth exited {r.returncode}")
    os.replace(tmp, path)
    json.dump({"bytes": os.path.getsize(path), "seconds": round(time.time() - t0, 1)}, open(stamp, "w"))
    log(f"done in {time.time() - t0:.0f}s: {os.path.getsize(path):,} bytes")
    return path


def summarize(rs):
    return {"median_wall_ms": statistics.median(x["wall_ms"] for x in rs),
            "median_peak_rss_mib": statistics.median(x["rss_kib"] for x in rs) / 1024.0,
            "min_wall_ms": min(x["wall_ms"] for x in rs),
            "max_peak_rss_mib": max(x["rss_kib"] for x in rs) / 1024.0,
            "runs": rs}


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------

def bench_case(runner: Runner, label: str, src: str, tools, rounds: int, warmup: int, out_dir: str):
    """tools: [(name, cmd, output path)]. Interleaved rounds; outputs deleted (and synced) after every run."""
    src_bytes = size_of(src)
    need_space(out_dir, int(src_bytes * 1.15), f"one output of {label} (~{src_bytes / 1e9:.1f} GB)")
    runs = {name: [] for name, _, _ in tools}
    sizes = {}

    def once(name, cmd, out, record):
        remove(out)
        warm(src)
        r = runner.run(cmd)
        if name not in sizes:
            sizes[name] = size_of(out)
            if sizes[name] == 0:
                raise RuntimeError(f"{name}: {' '.join(cmd)} exited 0 but wrote nothing at {out}")
        remove(out)
        os.sync()
        if record:
            runs[name].append(r)

    for w in range(warmup):
        for name, cmd, out in tools:
            once(name, cmd, out, record=False)
        log(f"{label} warm-up {w + 1}/{warmup}")
    for r in range(rounds):
        for name, cmd, out in tools:          # interleaved: cp, ditkit..., anchor, cp, ditkit..., anchor, ...
            once(name, cmd, out, record=True)
        log(f"{label} round {r + 1}/{rounds}")
    entry = {"case": label, "source": src, "source_bytes": src_bytes, "rounds": rounds, "warmup": warmup,
             "output_bytes": sizes, "tools": {}}
    for name, _, _ in tools:
        entry["tools"][name] = summarize(runs[name])
    cp = entry["tools"]["cp"]
    anchor_m = entry["tools"].get("anchor")
    for name, m in entry["tools"].items():
        m["ratio_wall_to_cp"] = m["median_wall_ms"] / cp["median_wall_ms"]
        m["ratio_rss_to_cp"] = m["median_peak_rss_mib"] / cp["median_peak_rss_mib"]
        if anchor_m:
            m["ratio_wall_to_anchor"] = m["median_wall_ms"] / anchor_m["median_wall_ms"]
            m["ratio_rss_to_anchor"] = m["median_peak_rss_mib"] / anchor_m["median_peak_rss_mib"]
        if name.startswith("ditkit"):
            m["wall_target_met"] = m["ratio_wall_to_cp"] <= WALL_RATIO_TARGET
            m["rss_target_met"] = m["median_peak_rss_mib"] <= RSS_TARGET_MIB
    return entry


def human(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


def print_table(summary):
    print(f"{'case':<12} {'tool':<17} {'median wall':>12} {'peak RSS':>11} {'x cp wall':>10} "
          f"{'x anchor wall':>14} {'x anchor RSS':>13}  output")
    for e in summary["results"]:
        first = True
        for name, m in e["tools"].items():
            case = f"{e['case']}" if first else ""
            aw = f"{m['ratio_wall_to_anchor']:.3f}x" if "ratio_wall_to_anchor" in m else "-"
            ar = f"{m['ratio_rss_to_anchor']:.3f}x" if "ratio_rss_to_anchor" in m else "-"
            out = e["output_bytes"].get(name, 0)
            print(f"{case:<12} {name:<17} {m['median_wall_ms'] / 1000:>10.2f} s {m['median_peak_rss_mib']:>7.1f} MiB "
                  f"{m['ratio_wall_to_cp']:>9.3f}x {aw:>14} {ar:>13}  {human(out)}")
            first = False
        print(f"{'':<12} source {e['source']} ({human(e['source_bytes'])}), {e['rounds']} rounds interleaved "
              f"(+{e['warmup']} warm-up)")
        for name, m in e["tools"].items():
            if name.startswith("ditkit"):
                ok = lambda b: "met" if b else "NOT MET"  # noqa: E731
                print(f"{'':<12} {name}: wall <= {WALL_RATIO_TARGET}x cp {ok(m['wall_target_met'])} "
                      f"({m['ratio_wall_to_cp']:.2f}x), peak RSS <= {RSS_TARGET_MIB:.0f} MiB "
                      f"{ok(m['rss_target_met'])} ({m['median_peak_rss_mib']:.1f} MiB)")
        for target in ("canonical", "diffusers"):
            d, b = e["tools"].get("ditkit " + target), e["tools"].get("baseline " + target)
            if d and b:
                print(f"{'':<12} ditkit / baseline {target}: wall {d['median_wall_ms'] / b['median_wall_ms']:.3f}x, "
                      f"peak RSS {d['median_peak_rss_mib'] / b['median_peak_rss_mib']:.3f}x")
        if "anchor_command" in e:
            print(f"{'':<12} anchor = {e['anchor_command']}")
    print(f"measurement: {summary['measurement']}")
    if "all_targets_met" in summary:
        print("ALL TARGETS MET" if summary["all_targets_met"] else "SOME TARGETS NOT MET")


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "--anchor":
        if len(sys.argv) != 4:
            print("usage: bench-convert.py --anchor SRC OUT", file=sys.stderr)
            return 2
        return anchor(sys.argv[2], sys.argv[3])

    ap = argparse.ArgumentParser(prog="bench-convert")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of every command first")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--anchor-only", action="store_true", help="time cp and the Python anchor only (no ditkit)")
    ap.add_argument("--no-anchor", action="store_true", help="skip the (slow) Python anchor")
    ap.add_argument("--baseline", metavar="BIN", help="also time this ditkit binary (e.g. a build of an earlier "
                    "commit), interleaved, and report ditkit / baseline")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--cerebras-2b", action="store_true", help="only the Cerebras 2B case")
    g.add_argument("--all", action="store_true", help="the DiT-XL/2 case and the Cerebras 2B case")
    args = ap.parse_args()

    bench_dir = os.environ["BENCH_DIR"]
    ditkit = os.environ["BENCH_DITKIT"]
    py = os.environ["BENCH_PYTHON"]
    xl2 = os.environ.get("BENCH_XL2", os.path.join(bench_dir, "xl2-original.pt"))
    out_dir = os.path.join(bench_dir, "out")
    os.makedirs(out_dir, exist_ok=True)
    for leftover in os.listdir(out_dir):
        remove(os.path.join(out_dir, leftover))

    if not args.anchor_only and not subcommand_available(ditkit, "convert"):
        print(f"bench-convert: `{ditkit} convert` is not available yet (no convert usage line in "
              f"`ditkit convert --help`). Use --anchor-only to time cp and the Python anchor alone.", file=sys.stderr)
        return 2

    runner = Runner(bench_dir)
    floor = None
    if not runner.launcher:
        floor = statistics.median(runner.run(["/bin/true"])["rss_kib"] for _ in range(3))
        log(f"no C compiler; RSS figures include the Python driver's fork image (floor: {floor / 1024:.1f} MiB)")

    results = []
    if not args.cerebras_2b:
        tools = [("cp", ["cp", xl2, os.path.join(out_dir, "copy.pt")], os.path.join(out_dir, "copy.pt"))]
        if not args.anchor_only:
            o1 = os.path.join(out_dir, "out.safetensors")
            o2 = os.path.join(out_dir, "out-diffusers")
            tools += [("ditkit canonical", [ditkit, "convert", xl2, "-o", o1, "--to", "canonical", "--force"], o1),
                      ("ditkit diffusers", [ditkit, "convert", xl2, "-o", o2, "--to", "diffusers", "--force"], o2)]
            if args.baseline:
                tools += [("baseline canonical", [args.baseline, "convert", xl2, "-o", o1, "--to", "canonical",
                                                  "--force"], o1),
                          ("baseline diffusers", [args.baseline, "convert", xl2, "-o", o2, "--to", "diffusers",
                                                  "--force"], o2)]
        if not args.no_anchor:
            o3 = os.path.join(out_dir, "anchor-diffusers")
            tools.append(("anchor", [py, str(HERE / "bench-convert.py"), "--anchor", xl2, o3], o3))
        e = bench_case(runner, "xl2", xl2, tools, args.rounds, args.warmup, out_dir)
        if not args.no_anchor:
            e["anchor_command"] = ("python: torch.load(weights_only=True) + diffusers' convert_dit_to_diffusers "
                                   "key mapping + DiTTransformer2DModel(...) + load_state_dict(strict=True) + "
                                   "save_pretrained(safe_serialization=True)")
        results.append(e)
    if args.cerebras_2b or args.all:
        if args.anchor_only:
            log("--anchor-only: the Cerebras 2B case needs ditkit (synth and convert); skipped")
        else:
            c2b = cerebras_2b(ditkit, bench_dir)
            o = os.path.join(out_dir, "c2b.safetensors")
            tools = [("cp", ["cp", c2b, os.path.join(out_dir, "c2b-copy.pt")], os.path.join(out_dir, "c2b-copy.pt")),
                     ("ditkit canonical", [ditkit, "convert", c2b, "-o", o, "--to", "canonical", "--force"], o)]
            results.append(bench_case(runner, "cerebras-2B", c2b, tools, args.rounds, args.warmup, out_dir))

    summary = {"targets": {"wall_ratio_to_cp": WALL_RATIO_TARGET, "peak_rss_mib": RSS_TARGET_MIB},
               "measurement": "C launcher wait4" if runner.launcher else
                              "python os.fork+wait4 (inflated by the driver image)",
               "rss_floor_mib": None if floor is None else floor / 1024.0,
               "disk_free_gib": free_bytes(bench_dir) / GIB, "results": results}
    ditkit_entries = [m for e in results for n, m in e["tools"].items() if n.startswith("ditkit")]
    if ditkit_entries:
        summary["all_targets_met"] = all(m["wall_target_met"] and m["rss_target_met"] for m in ditkit_entries)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
