#!/usr/bin/env python3
"""Creates (once) the DiT-XL/2-sized benchmark checkpoints used by scripts/bench-inspect.

    <dir>/xl2-original.pt            bare state dict, original DiT names, f32, written by torch.save
                                     (292 keys, 675,129,632 numbers, ~2.7 GB)
    <dir>/xl2-diffusers/transformer/ config.json + diffusion_pytorch_model.safetensors written by
                                     diffusers DiTTransformer2DModel(...).save_pretrained (538 keys, ~3.0 GB)

The weights are seeded random normals (pos_embed is the real sin-cos table). Files are written under a temporary
name and renamed, with a small stamp file, so an interrupted run never leaves a half file that looks complete.
Prints a JSON object with the paths on stdout.

Run with the fixture venv:  .venv-fixtures/bin/python scripts/make-bench-files.py [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
sys.dont_write_bytecode = True

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures" / "generate"))

import torch  # noqa: E402

import dit_original  # noqa: E402

ORIGINAL_KEYS, ORIGINAL_NUMBERS = 292, 675_129_632
DIFFUSERS_KEYS, DIFFUSERS_NUMBERS = 538, 749_826_464
XL2_DIFFUSERS = dict(num_layers=28, attention_head_dim=72, num_attention_heads=16, in_channels=4, out_channels=8,
                     patch_size=2, sample_size=32, num_embeds_ada_norm=1000)
STAMP_VERSION = 1


def log(msg: str):
    print(f"[make-bench-files] {msg}", file=sys.stderr, flush=True)


def stamp_ok(stamp: Path, target: Path) -> bool:
    if not (stamp.exists() and target.exists()):
        return False
    try:
        info = json.loads(stamp.read_text())
    except ValueError:
        return False
    size = target.stat().st_size if target.is_file() else sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return info.get("version") == STAMP_VERSION and info.get("bytes") == size


def write_stamp(stamp: Path, target: Path, **info):
    size = target.stat().st_size if target.is_file() else sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    stamp.write_text(json.dumps({"version": STAMP_VERSION, "bytes": size, **info}) + "\n")


def make_original(path: Path):
    stamp = path.with_name(path.name + ".stamp")
    if stamp_ok(stamp, path):
        log(f"cached: {path}")
        return
    t0 = time.time()
    log(f"writing {path} (~2.7 GB) ...")
    gen = torch.Generator().manual_seed(2024)
    sd = {}
    for name, shape in dit_original.state_dict_shapes("DiT-XL/2", input_size=32, num_classes=1000):
        if name == "pos_embed":
            table = dit_original.sincos_2d_table(shape[2], int(math.isqrt(shape[1])))
            sd[name] = torch.from_numpy(table).float().reshape(shape)
        else:
            sd[name] = torch.randn(shape, generator=gen, dtype=torch.float32) * 0.02
    assert len(sd) == ORIGINAL_KEYS and sum(t.numel() for t in sd.values()) == ORIGINAL_NUMBERS
    tmp = path.with_name(path.name + ".partial")
    torch.save(sd, tmp)
    del sd
    os.replace(tmp, path)
    write_stamp(stamp, path, keys=ORIGINAL_KEYS, numbers=ORIGINAL_NUMBERS)
    log(f"done in {time.time() - t0:.0f}s: {path.stat().st_size:,} bytes")


def make_diffusers(folder: Path):
    stamp = folder.with_name(folder.name + ".stamp")
    if stamp_ok(stamp, folder):
        log(f"cached: {folder}")
        return
    from diffusers import DiTTransformer2DModel

    t0 = time.time()
    log(f"writing {folder} (~3.0 GB) ...")
    # Build on the meta device (no init cost, no memory), then give every parameter real seeded values.
    with torch.device("meta"):
        model = DiTTransformer2DModel(**XL2_DIFFUSERS)
    model = model.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(2025)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.normal_(0.0, 0.02, generator=gen)
    sd = model.state_dict()
    assert len(sd) == DIFFUSERS_KEYS and sum(t.numel() for t in sd.values()) == DIFFUSERS_NUMBERS, \
        (len(sd), sum(t.numel() for t in sd.values()))
    del sd
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True, max_shard_size="20GB")
    del model
    assert (tmp / "diffusion_pytorch_model.safetensors").exists(), sorted(os.listdir(tmp))
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, folder)
    write_stamp(stamp, folder, keys=DIFFUSERS_KEYS, numbers=DIFFUSERS_NUMBERS)
    log(f"done in {time.time() - t0:.0f}s: {(folder / 'diffusion_pytorch_model.safetensors').stat().st_size:,} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.environ.get("DITKIT_BENCH_DIR", "/tmp/ditkit-bench"))
    ap.add_argument("--only", choices=["original", "diffusers"], default=None)
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    original = d / "xl2-original.pt"
    diffusers_folder = d / "xl2-diffusers" / "transformer"
    if args.only in (None, "original"):
        make_original(original)
    if args.only in (None, "diffusers"):
        make_diffusers(diffusers_folder)
    print(json.dumps({"original": str(original), "diffusers": str(diffusers_folder)}))


if __name__ == "__main__":
    main()
