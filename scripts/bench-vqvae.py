#!/usr/bin/env python3
"""Driver of scripts/bench-vqvae: VQ-VAE decode of a token grid, diffusers' VQModel on the CPU against ditkit.

    bench-vqvae.py [--rounds N] [--batch B] [--tokens 32] [--json]

Run through scripts/bench-vqvae, which sets BENCH_FOLDER (a diffusers vqvae/ folder with ITHQ sizes and synthetic
weights, made here when missing) and BENCH_DITKIT_CMD (the command that starts ditkit's benchmark entry, a release
test binary). See the header of that script for what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.dont_write_bytecode = True
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

# ITHQ's VQModel (REFERENCE.md §4): 303 tensors, 64,009,667 numbers.
ITHQ = dict(in_channels=3, out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
            up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3,
            block_out_channels=[64, 128, 256, 512], layers_per_block=2, latent_channels=256,
            num_vq_embeddings=4096, vq_embed_dim=128, norm_num_groups=32, sample_size=256)


def make_folder(folder: Path) -> None:
    """diffusers' VQModel with ITHQ sizes, random weights (seed 0: conv/linear U(±√(3/fan_in)), norms γ≈1, β≈0)."""
    import torch
    from diffusers import VQModel

    torch.manual_seed(0)
    model = VQModel(**ITHQ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * (torch.rand_like(p) * 2 - 1))
            elif p.dim() == 1:
                p.copy_(0.1 * (torch.rand_like(p) * 2 - 1))
            elif name.startswith("quantize."):
                p.copy_(torch.rand_like(p) * 2 - 1)
            else:
                fan_in = p[0].numel()
                p.copy_((torch.rand_like(p) * 2 - 1) * (3.0 / fan_in) ** 0.5)
    count = sum(p.numel() for p in model.state_dict().values())
    model.save_pretrained(folder, safe_serialization=True)
    (folder / ".stamp").write_text(json.dumps({"numbers": count}))


class TorchSide:
    def __init__(self, folder: Path):
        import torch
        from diffusers import VQModel

        self.torch = torch
        torch.set_num_threads(os.cpu_count() or 1)
        self.model = VQModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        with torch.no_grad():  # off the file's memory map, as ditkit holds its weights
            for mod in self.model.modules():
                for name, p in list(mod.named_parameters(recurse=False)):
                    p.data = p.data.clone()

    def decode(self, batch: int, side: int) -> float:
        torch = self.torch
        g = torch.Generator().manual_seed(1)
        tokens = torch.randint(0, ITHQ["num_vq_embeddings"], (batch, side * side), generator=g)
        with torch.no_grad():
            start = time.perf_counter()
            q = self.model.quantize.get_codebook_entry(tokens, (batch, side, side, ITHQ["vq_embed_dim"]))
            image = self.model.decode(q, force_not_quantize=True).sample
            elapsed = (time.perf_counter() - start) * 1000
        assert image.shape == (batch, 3, side * 8, side * 8)
        return elapsed


class DitkitSide:
    """ditkit's benchmark entry, a long-lived process serving `decode N` requests over two FIFOs."""

    def __init__(self, command: str, folder: Path, side: int):
        self.dir = tempfile.mkdtemp(prefix="ditkit-vqvae-")
        self.request, self.reply = os.path.join(self.dir, "in"), os.path.join(self.dir, "out")
        os.mkfifo(self.request)
        os.mkfifo(self.reply)
        env = dict(os.environ, DITKIT_VQVAE_BENCH=str(folder), DITKIT_VQVAE_BENCH_IN=self.request,
                   DITKIT_VQVAE_BENCH_OUT=self.reply, DITKIT_VQVAE_BENCH_TOKENS=str(side))
        self.process = subprocess.Popen(command, shell=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.out = open(self.request, "w")
        self.inp = open(self.reply, "r")
        ready = self.inp.readline().split()
        self.kernels = ready[1] if len(ready) > 1 else "?"

    def decode(self, batch: int) -> float:
        self.out.write(f"decode {batch}\n")
        self.out.flush()
        line = self.inp.readline().split()
        if not line or line[0] != "ms":
            raise RuntimeError(f"ditkit's benchmark entry answered {line!r}")
        return float(line[1])

    def close(self) -> None:
        try:
            self.out.write("quit\n")
            self.out.close()
        except OSError:
            pass
        self.process.wait(timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(os.environ["BENCH_FOLDER"])
    if not (folder / ".stamp").exists():
        print(f"bench-vqvae: making {folder} (diffusers VQModel, ITHQ sizes, synthetic weights)", file=sys.stderr)
        folder.mkdir(parents=True, exist_ok=True)
        make_folder(folder)
    torch_side = TorchSide(folder)
    ditkit = DitkitSide(os.environ["BENCH_DITKIT_CMD"], folder, args.tokens)
    try:
        torch_side.decode(args.batch, args.tokens)  # warm-ups, untimed
        ditkit.decode(args.batch)
        torch_ms, ditkit_ms = [], []
        for _ in range(args.rounds):  # interleaved
            torch_ms.append(torch_side.decode(args.batch, args.tokens))
            ditkit_ms.append(ditkit.decode(args.batch))
    finally:
        ditkit.close()
    import torch
    result = {
        "model": "VQModel (ITHQ sizes, synthetic weights)", "tokens": f"{args.tokens}x{args.tokens}",
        "image": f"{args.tokens * 8}x{args.tokens * 8}", "batch": args.batch, "rounds": args.rounds,
        "torch_ms": statistics.median(torch_ms), "ditkit_ms": statistics.median(ditkit_ms),
        "ratio": statistics.median(ditkit_ms) / statistics.median(torch_ms), "ditkit_kernels": ditkit.kernels,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "torch_rounds_ms": torch_ms, "ditkit_rounds_ms": ditkit_ms,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"VQ-VAE decode, {result['tokens']} tokens -> {result['image']} image, batch {args.batch}, "
              f"{args.rounds} interleaved rounds (medians):")
        print(f"  diffusers VQModel.decode (torch {result['torch']}, {result['threads']} threads): {result['torch_ms']:.1f} ms")
        print(f"  ditkit VQVAEForward.decode ({result['ditkit_kernels']}): {result['ditkit_ms']:.1f} ms")
        print(f"  ratio ditkit/diffusers: {result['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
