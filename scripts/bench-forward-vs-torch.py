#!/usr/bin/env python3
"""Driver of scripts/bench-forward-vs-torch: the DiT forward pass, diffusers on the CPU against `ditkit bench forward`.

    bench-forward-vs-torch.py [--rounds N] [--batches 1,2] [--preset DiT-XL/2] [--json] [--torch-only]
                              [--ditkit-rounds K]

Run through scripts/bench-forward-vs-torch, which makes the diffusers folder with `ditkit synth` and sets BENCH_FOLDER
(the transformer folder) and BENCH_DITKIT (the binary). See the header of that script for what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.dont_write_bytecode = True
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class TorchSide:
    """diffusers' DiTTransformer2DModel, float32, eval, eager, all CPU threads."""

    def __init__(self, folder: str):
        import torch
        from diffusers import DiTTransformer2DModel

        self.torch = torch
        torch.set_num_threads(os.cpu_count() or 1)
        t0 = time.perf_counter()
        self.model = DiTTransformer2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        # from_pretrained leaves the tensors on the safetensors file's memory map (lazily faulted pages). The page
        # cache can drop them while the ditkit child runs, and the next PyTorch round then reads them back from disk
        # (measured here: rounds of 1.5 s and 4.2 s at batch 1). Copy them into ordinary memory, as ditkit holds its.
        with torch.no_grad():
            for mod in self.model.modules():
                for name, p in list(mod.named_parameters(recurse=False)):
                    p.data = p.data.clone()
                for name, b in list(mod.named_buffers(recurse=False)):
                    if b is not None:
                        setattr(mod, name, b.clone())
        self.load_s = time.perf_counter() - t0
        c = self.model.config
        self.size, self.channels, self.classes = c.sample_size, c.in_channels, c.num_embeds_ada_norm
        self.inputs = {}

    def _inputs(self, n: int):
        if n not in self.inputs:
            torch = self.torch
            g = torch.Generator().manual_seed(0)
            x = torch.randn((n, self.channels, self.size, self.size), generator=g)
            t = torch.tensor([(999, 500, 250, 0)[i % 4] for i in range(n)], dtype=torch.int64)
            y = torch.tensor([(0, self.classes, 1, 2)[i % 4] for i in range(n)], dtype=torch.int64)
            self.inputs[n] = (x, t, y)
        return self.inputs[n]

    def forward_ms(self, n: int) -> float:
        x, t, y = self._inputs(n)
        with self.torch.no_grad():
            start = time.perf_counter()
            out = self.model(x, timestep=t, class_labels=y).sample
            elapsed = time.perf_counter() - start
        assert out.shape[0] == n
        return elapsed * 1000.0


class DitkitSide:
    """`ditkit bench forward PRESET --batch N --json` in a child process; the times are ditkit's own."""

    def __init__(self, binary: str, preset: str, rounds: int):
        self.binary, self.preset, self.rounds = binary, preset, rounds

    def run(self, n: int) -> dict:
        cmd = [self.binary, "bench", "forward", self.preset, "--batch", str(n), "--json"]
        if self.rounds:
            cmd += ["--rounds", str(self.rounds)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode}: {' | '.join(tail)}")
        data = first_json_object(r.stdout)
        if not isinstance(data, dict) or "forward_ms" not in data:
            raise RuntimeError(f"`{' '.join(cmd)}` printed no JSON with forward_ms: {r.stdout[:200]!r}")
        return data


def first_json_object(text: str):
    """The first JSON object in `text` (ditkit pretty-prints it over several lines)."""
    dec = json.JSONDecoder()
    i = text.find("{")
    while i >= 0:
        try:
            return dec.raw_decode(text, i)[0]
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
    return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", default="1,2")
    ap.add_argument("--preset", default="DiT-XL/2")
    ap.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    ap.add_argument("--torch-only", action="store_true", help="time only the PyTorch side")
    ap.add_argument("--ditkit-rounds", type=int, default=1,
                    help="--rounds passed to each `ditkit bench forward` call (its median is one sample here; "
                         "ditkit warms up by itself inside every call; 0: ditkit's default)")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    folder = os.environ.get("BENCH_FOLDER")
    binary = os.environ.get("BENCH_DITKIT", "")
    if not folder:
        print("bench-forward-vs-torch.py: run it through scripts/bench-forward-vs-torch (BENCH_FOLDER unset)",
              file=sys.stderr)
        return 2

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    torch_side = TorchSide(folder)
    import diffusers
    import torch

    log(f"bench: PyTorch {torch.__version__}, diffusers {diffusers.__version__}, {torch.get_num_threads()} threads, "
        f"{cpu_model()}; model loaded in {torch_side.load_s:.1f} s from {folder}")

    ditkit = None
    ditkit_missing = "--torch-only" if args.torch_only else None
    if not args.torch_only:
        if not binary or not Path(binary).exists():
            ditkit_missing = f"no ditkit binary at {binary or '(BENCH_DITKIT unset)'}"
        else:
            ditkit = DitkitSide(binary, args.preset, args.ditkit_rounds)

    results = []
    for n in batches:
        # warm-up: one untimed run per side
        log(f"bench: batch {n}: warm-up")
        torch_side.forward_ms(n)
        if ditkit is not None:
            try:
                ditkit.run(n)
            except (RuntimeError, OSError) as e:
                ditkit_missing = str(e)
                ditkit = None
                log(f"bench: ditkit side unavailable, timing PyTorch only: {e}")
        torch_ms, dk = [], []
        for r in range(args.rounds):
            torch_ms.append(torch_side.forward_ms(n))
            line = f"bench: batch {n} round {r + 1}/{args.rounds}: PyTorch {torch_ms[-1]:,.1f} ms"
            if ditkit is not None:
                try:
                    dk.append(ditkit.run(n))
                    line += f", ditkit {dk[-1]['forward_ms']:,.1f} ms"
                except (RuntimeError, OSError) as e:
                    ditkit_missing = str(e)
                    ditkit = None
                    log(f"bench: ditkit side failed, timing PyTorch only from here: {e}")
            log(line)
        t_med = median(torch_ms)
        d_med = median([d["forward_ms"] for d in dk]) if dk else None
        floor = median([d.get("gemm_floor_ms") for d in dk]) if dk else None
        own_ratio = median([d.get("ratio") for d in dk]) if dk else None
        results.append({"preset": args.preset, "batch": n, "rounds": args.rounds,
                        "torch_ms": t_med, "torch_ms_all": [round(v, 2) for v in torch_ms],
                        "ditkit_ms": d_med, "ditkit_ms_all": [d["forward_ms"] for d in dk],
                        "ratio_ditkit_over_torch": (d_med / t_med) if d_med and t_med else None,
                        "gemm_floor_ms": floor, "ditkit_ratio_to_floor": own_ratio})

    env = {"torch": torch.__version__, "diffusers": diffusers.__version__, "threads": torch.get_num_threads(),
           "cpu": cpu_model(), "cpu_count": os.cpu_count(), "folder": folder}
    if args.json:
        print(json.dumps({"environment": env, "ditkit": None if ditkit_missing else binary,
                          "ditkit_missing": ditkit_missing, "results": results}, indent=1))
        return 0
    print(f"DiT forward, {args.preset}, float32, CPU ({env['cpu']}, {env['threads']} threads); "
          f"medians of {args.rounds} interleaved rounds after 1 warm-up per side")
    print(f"PyTorch: diffusers {env['diffusers']} DiTTransformer2DModel, torch {env['torch']}, eager, no_grad")
    if ditkit_missing:
        print(f"ditkit: NOT TIMED ({ditkit_missing}); only the PyTorch half was measured")
    head = f"{'batch':>5}  {'PyTorch ms':>11}  {'ditkit ms':>10}  {'ditkit/PyTorch':>14}  {'GEMM floor ms':>13}  {'ditkit/floor':>12}"
    print(head)
    for r in results:
        print(f"{r['batch']:>5}  {fmt(r['torch_ms']):>11}  {fmt(r['ditkit_ms']):>10}  "
              f"{fmt(r['ratio_ditkit_over_torch'], 2):>14}  {fmt(r['gemm_floor_ms']):>13}  "
              f"{fmt(r['ditkit_ratio_to_floor'], 2):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
