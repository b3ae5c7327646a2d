#!/usr/bin/env python3
"""Driver of scripts/bench-vq-forward: the VQ-Diffusion ITHQ transformer, diffusers on the CPU against
`ditkit bench forward ITHQ`, the same (synthetic, seed 0) weights, interleaved.

    bench-vq-forward.py [--rounds N] [--batch N] [--json] [--ditkit-rounds K]

Run through scripts/bench-vq-forward, which sets BENCH_FILE (the canonical ITHQ file) and BENCH_DITKIT (the binary).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

sys.dont_write_bytecode = True
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def diffusers_name(canonical: str) -> str:
    """The diffusers Transformer2DModel name of a canonical VQ-Diffusion tensor (REFERENCE §4)."""
    fixed = {
        "latent_embed.tokens": "latent_image_embedding.emb.weight",
        "latent_embed.height": "latent_image_embedding.height_emb.weight",
        "latent_embed.width": "latent_image_embedding.width_emb.weight",
    }
    if canonical in fixed:
        return fixed[canonical]
    if canonical.startswith("blocks."):
        _, i, rest = canonical.split(".", 2)
        for a, b in [("norm1.table", "norm1.emb.weight"), ("norm2.table", "norm2.emb.weight"),
                     ("self_attn.q.", "attn1.to_q."), ("self_attn.k.", "attn1.to_k."), ("self_attn.v.", "attn1.to_v."),
                     ("self_attn.out.", "attn1.to_out.0."), ("cross_attn.q.", "attn2.to_q."),
                     ("cross_attn.k.", "attn2.to_k."), ("cross_attn.v.", "attn2.to_v."),
                     ("cross_attn.out.", "attn2.to_out.0."), ("mlp.fc1.", "ff.net.0.proj."), ("mlp.fc2.", "ff.net.2.")]:
            if rest.startswith(a):
                rest = b + rest[len(a):]
                break
        return f"transformer_blocks.{i}.{rest}"
    return canonical  # norm_out.*, out.*


class TorchSide:
    def __init__(self, path: str):
        import torch
        from diffusers import Transformer2DModel
        from safetensors import safe_open

        self.torch = torch
        torch.set_num_threads(os.cpu_count() or 1)
        t0 = time.perf_counter()
        with safe_open(path, "pt") as f:
            config = json.loads(f.metadata()["ditkit.config"])
            self.config = config
            d, heads = config["hidden_size"], config["num_heads"]
            self.model = Transformer2DModel(
                num_attention_heads=heads, attention_head_dim=d // heads, num_layers=config["depth"],
                cross_attention_dim=config["context_dim"], num_vector_embeds=config["codes"] + 1,
                sample_size=config["height"], num_embeds_ada_norm=config["diffusion_steps"],
                activation_fn="geglu-approximate", attention_bias=True, norm_type="layer_norm")
            # The frozen attention mask (the original's unused buffer) has no place in diffusers.
            state = {diffusers_name(k): f.get_tensor(k).clone() for k in f.keys() if k != "cross_attn.mask"}
        self.model.load_state_dict(state, strict=True)
        del state
        self.model.eval()
        self.load_s = time.perf_counter() - t0
        self.inputs = {}

    def forward_ms(self, n: int) -> float:
        torch, c = self.torch, self.config
        if n not in self.inputs:
            g = torch.Generator().manual_seed(0)
            tokens = torch.randint(0, c["codes"] + 1, (n, c["height"] * c["width"]), generator=g)
            context = torch.randn((n, c["context_length"], c["context_dim"]), generator=g)
            context = context / context.norm(dim=-1, keepdim=True)
            self.inputs[n] = (tokens, context, torch.tensor(c["diffusion_steps"] // 2))  # one timestep for the batch
        tokens, context, t = self.inputs[n]
        with torch.no_grad():
            start = time.perf_counter()
            out = self.model(tokens, encoder_hidden_states=context, timestep=t).sample
            elapsed = time.perf_counter() - start
        assert out.shape == (n, self.config["codes"], self.config["height"] * self.config["width"]), out.shape
        return elapsed * 1000.0


def ditkit_run(binary: str, n: int, rounds: int) -> dict:
    cmd = [binary, "bench", "forward", "ITHQ", "--batch", str(n), "--json", "--rounds", str(rounds)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}")
    text = r.stdout
    return json.JSONDecoder().raw_decode(text, text.find("{"))[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ditkit-rounds", type=int, default=1)
    args = ap.parse_args()
    path, binary = os.environ.get("BENCH_FILE"), os.environ.get("BENCH_DITKIT", "")
    if not path:
        print("bench-vq-forward.py: run it through scripts/bench-vq-forward (BENCH_FILE unset)", file=sys.stderr)
        return 2
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    torch_side = TorchSide(path)
    import diffusers
    import torch
    log(f"bench: PyTorch {torch.__version__}, diffusers {diffusers.__version__}, {torch.get_num_threads()} threads; "
        f"model loaded in {torch_side.load_s:.1f} s from {path}")
    n = args.batch
    log(f"bench: batch {n}: warm-up")
    torch_side.forward_ms(n)
    ditkit_run(binary, n, args.ditkit_rounds)
    torch_ms, runs = [], []
    for r in range(args.rounds):
        torch_ms.append(torch_side.forward_ms(n))
        runs.append(ditkit_run(binary, n, args.ditkit_rounds))
        log(f"bench: round {r + 1}/{args.rounds}: PyTorch {torch_ms[-1]:,.1f} ms, ditkit {runs[-1]['forward_ms']:,.1f} ms "
            f"(floor {runs[-1]['gemm_floor_ms']:,.1f} ms)")
    t = statistics.median(torch_ms)
    d = statistics.median([x["forward_ms"] for x in runs])
    floor = statistics.median([x["gemm_floor_ms"] for x in runs])
    own_ratio = statistics.median([x["ratio"] for x in runs])  # forward / floor within each ditkit run
    result = {"preset": "ITHQ", "batch": n, "rounds": args.rounds, "torch_ms": t, "torch_ms_all": torch_ms,
              "ditkit_ms": d, "ditkit_ms_all": [x["forward_ms"] for x in runs], "ratio_ditkit_over_torch": d / t,
              "gemm_floor_ms": floor, "ditkit_ratio_to_floor": own_ratio, "ratio_of_medians_to_floor": d / floor, "kernels": runs[0].get("kernels"),
              "torch": torch.__version__, "diffusers": diffusers.__version__, "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"ITHQ transformer, batch {n}, {args.rounds} interleaved rounds (medians)")
        print(f"diffusers   {t:,.1f} ms")
        print(f"ditkit      {d:,.1f} ms   ({d / t:.3f}× diffusers)")
        print(f"GEMM floor  {floor:,.1f} ms   (ditkit {own_ratio:.3f}× its floor: median of each run's ratio; "
              f"{d / floor:.3f}× as ratio of medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
