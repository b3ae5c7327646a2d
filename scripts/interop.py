#!/usr/bin/env python3
"""Interop checks of `ditkit convert` against PyTorch, diffusers and the reference models (run by scripts/interop).

    .venv-fixtures/bin/python scripts/interop.py [--ditkit PATH] [--standin [--standin-fault KIND]] [--keep]
                                                 [--workdir DIR] [--only a,b,c]

Every check prints one line, `PASS`, `FAIL` or `SKIP`, and `INFO` lines carry facts that are not pass/fail.
Exit status: 0 all checks passed, 1 some check failed, 2 `ditkit convert` is not available (nothing converted).

  a) original -> diffusers. The reference is what diffusers' own `scripts/convert_dit_to_diffusers.py` produces
     from the same original state dict (re-implemented below, with two minimal fixes; see
     `upstream_diffusers_mapping`). ditkit's folder must load with `DiTTransformer2DModel.from_pretrained`
     (no missing/unexpected keys) and `DiTPipeline.from_pretrained` (vae=None, and with the fixture's tiny VAE
     copied in), and every tensor must equal the reference bit for bit.
  b) -> original (from tiny-dit.pt, from diffusers folders, and the chain original -> diffusers -> original):
     `torch.load(weights_only=True)`, `load_state_dict(strict=True)` into dit_original's tiny DiT, and the
     forward output must equal (torch.equal) the source model's.
  c) Cerebras -> original: strict load into dit_original with learn_sigma=False; with erf GELU and the float64
     timestep table (cerebras_reference.match_original_numerics) its output must match cerebras_reference
     within 1e-6. Plus the round trip Cerebras -> original -> Cerebras, and the refusal to turn the tiny
     learned-sigma DiT (per-position head bias) into a Cerebras file.

  d) Cerebras .mdl (`--to cerebras --container mdl`, LZ4 and `--compression none`, f32 and bf16, and from a
     canonical file): h5py + hdf5plugin read every dataset bit for bit equal to the source's tensor (bf16 as the
     int16 bits), with the saver's attributes (`__version__` 0.5, `__SUCCESS__` TRUE, per-leaf metadata);
     `cerebras.pytorch.load` (cerebras-pytorch 2.10 in .venv-cerebras, on the CPU) returns the same state dict
     (nesting, dtypes, bits); and re-saving that state with the real `cerebras.pytorch.save` gives the same
     datasets, chunk shapes, filters, compressed chunk bytes and attributes (ditkit adds `__written_by__`).
     Skipped when .venv-cerebras is missing (fixtures/generate/setup-cerebras-venv.sh makes it).

`--standin` replaces `ditkit convert` by a small Python converter defined here. It tests THIS SCRIPT (its
loading and comparison code), not ditkit. `--standin-fault flip` makes the stand-in flip one low mantissa bit
in every output it writes, and `--standin-fault swap-qk` swaps to_q and to_k of block 0, to show that the
checks catch such faults.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

sys.dont_write_bytecode = True
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
FX = ROOT / "fixtures"
sys.path.insert(0, str(FX / "generate"))

import torch  # noqa: E402

import cerebras_reference  # noqa: E402
import dit_original  # noqa: E402

TINY_DIT = FX / "checkpoints/original/tiny-dit.pt"
DIFF_TRANSFORMER = FX / "checkpoints/diffusers/transformer"
DIFF_PIPELINE = FX / "checkpoints/diffusers/pipeline"
TINY_CEREBRAS = FX / "checkpoints/cerebras/tiny-cerebras.pt"
TINY_CEREBRAS_BF16 = FX / "checkpoints/cerebras/tiny-cerebras-bf16.pt"

# preset hidden size -> heads (heads are not in the weights); the tiny fixtures use D 32 with 2 heads
HEADS_BY_HIDDEN = {384: 6, 768: 12, 1024: 16, 1152: 16, 2048: 16, 32: 2}


# --------------------------------------------------------------------------------------------------
# diffusers' own conversion, re-implemented
# --------------------------------------------------------------------------------------------------

def upstream_diffusers_mapping(state_dict: dict, depth: int | None = None) -> dict:
    """The state dict diffusers' `scripts/convert_dit_to_diffusers.py` (huggingface/diffusers, checked at commit
    58eb52c0) hands to `Transformer2DModel.load_state_dict(strict=True)`, rewritten here in our own words.

    What the upstream script does, in order, mutating the loaded dict in place:
      * `x_embedder.proj.{weight,bias}` -> `pos_embed.proj.{weight,bias}`;
      * per block i: the ONE timestep MLP (`t_embedder.mlp.0/.2`) and the ONE label table
        (`y_embedder.embedding_table.weight`) are assigned to every block's
        `transformer_blocks.{i}.norm1.emb.timestep_embedder.linear_1/.linear_2` and
        `...norm1.emb.class_embedder.embedding_table.weight` (the same tensor objects, repeated N times);
        `blocks.{i}.adaLN_modulation.1` -> `transformer_blocks.{i}.norm1.linear` (unchanged, same chunk order);
        `attn.qkv.weight`/`.bias` are cut with `torch.chunk(3, dim=0)` into `attn1.to_q/to_k/to_v` (views: rows
        [0,D), [D,2D), [2D,3D); no other arithmetic); `attn.proj` -> `attn1.to_out.0`; `mlp.fc1` -> `ff.net.0.proj`;
        `mlp.fc2` -> `ff.net.2`;
      * `final_layer.adaLN_modulation.1` -> `proj_out_1`, `final_layer.linear` -> `proj_out_2`;
      * every source key is popped afterwards.
    No tensor is transformed beyond the qkv split: no transposes, no dtype change, no scaling.

    Minimal fixes (both needed to run it at all on current torch/diffusers, neither changes a tensor):
      1. depth: upstream loops `range(28)` (DiT-XL/2 only); here it is the number of `blocks.{i}` in the dict.
      2. pos_embed: upstream never pops `pos_embed`, and diffusers registers `pos_embed.pos_embed` as a
         non-persistent buffer that is recomputed, so `load_state_dict(strict=True)` fails with
         `Unexpected key(s) in state_dict: "pos_embed"`. Here it is dropped (the table is recomputed by diffusers).
    """
    sd = collections.OrderedDict(state_dict)          # shallow copy: same tensor objects, like the script
    if depth is None:
        depth = 0
        while f"blocks.{depth}.attn.qkv.weight" in sd:
            depth += 1
    sd["pos_embed.proj.weight"] = sd.pop("x_embedder.proj.weight")
    sd["pos_embed.proj.bias"] = sd.pop("x_embedder.proj.bias")
    shared = {"norm1.emb.timestep_embedder.linear_1.weight": "t_embedder.mlp.0.weight",
              "norm1.emb.timestep_embedder.linear_1.bias": "t_embedder.mlp.0.bias",
              "norm1.emb.timestep_embedder.linear_2.weight": "t_embedder.mlp.2.weight",
              "norm1.emb.timestep_embedder.linear_2.bias": "t_embedder.mlp.2.bias",
              "norm1.emb.class_embedder.embedding_table.weight": "y_embedder.embedding_table.weight"}
    per_block = {"norm1.linear": "adaLN_modulation.1", "attn1.to_out.0": "attn.proj",
                 "ff.net.0.proj": "mlp.fc1", "ff.net.2": "mlp.fc2"}
    for i in range(depth):
        new, old = f"transformer_blocks.{i}.", f"blocks.{i}."
        for dst, src in shared.items():
            sd[new + dst] = sd[src]
        for suffix in ("weight", "bias"):
            sd[new + f"norm1.linear.{suffix}"] = sd[old + f"adaLN_modulation.1.{suffix}"]
            q, k, v = torch.chunk(sd[old + f"attn.qkv.{suffix}"], 3, dim=0)
            sd[new + f"attn1.to_q.{suffix}"] = q
            sd[new + f"attn1.to_k.{suffix}"] = k
            sd[new + f"attn1.to_v.{suffix}"] = v
            for dst, src in per_block.items():
                if dst != "norm1.linear":
                    sd[new + f"{dst}.{suffix}"] = sd[old + f"{src}.{suffix}"]
        for src in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2", "adaLN_modulation.1"):
            for suffix in ("weight", "bias"):
                del sd[old + f"{src}.{suffix}"]
    for src in set(shared.values()):
        del sd[src]
    for dst, src in (("proj_out_1", "final_layer.adaLN_modulation.1"), ("proj_out_2", "final_layer.linear")):
        for suffix in ("weight", "bias"):
            sd[f"{dst}.{suffix}"] = sd.pop(f"{src}.{suffix}")
    sd.pop("pos_embed", None)                          # fix 2 (see above)
    return sd


def original_hyperparameters(sd: dict) -> dict:
    """DiT hyper-parameters of an original-layout state dict."""
    d, c, p, _ = sd["x_embedder.proj.weight"].shape
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in sd:
        depth += 1
    rows = sd["final_layer.linear.weight"].shape[0]
    t = sd["pos_embed"].shape[1] if "pos_embed" in sd else None
    return dict(hidden=d, in_channels=c, patch=p, depth=depth, out_channels=rows // (p * p),
                num_classes=sd["y_embedder.embedding_table.weight"].shape[0] - 1,
                heads=HEADS_BY_HIDDEN.get(d), sample_size=None if t is None else math.isqrt(t) * p,
                mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / d)


def upstream_transformer_kwargs(sd: dict, sample_size: int | None = None) -> dict:
    """The upstream script's `Transformer2DModel(...)` arguments, with the XL/2 numbers replaced by the ones of
    this state dict (sample_size = image_size // 8 upstream; here from pos_embed)."""
    h = original_hyperparameters(sd)
    return dict(sample_size=sample_size or h["sample_size"], num_layers=h["depth"],
                attention_head_dim=h["hidden"] // h["heads"], in_channels=h["in_channels"],
                out_channels=h["out_channels"], patch_size=h["patch"], attention_bias=True,
                num_attention_heads=h["heads"], activation_fn="gelu-approximate",
                num_embeds_ada_norm=h["num_classes"], norm_type="ada_norm_zero", norm_elementwise_affine=False)


UPSTREAM_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon",
                          clip_sample=False)


def upstream_reference_model(sd: dict):
    """Runs the upstream steps on `sd`: mapping, `Transformer2DModel(...)`, `load_state_dict(strict=True)`.
    Returns (model, mapped dict). diffusers >= 0.29 still builds the legacy class name; from_pretrained remaps a
    saved `Transformer2DModel` + ada_norm_zero config to DiTTransformer2DModel, with the same keys."""
    from diffusers import Transformer2DModel

    mapped = upstream_diffusers_mapping(sd)
    torch.manual_seed(0)
    model = Transformer2DModel(**upstream_transformer_kwargs(sd))
    model.load_state_dict(mapped, strict=True)
    model.eval()
    return model, mapped


# --------------------------------------------------------------------------------------------------
# Loading and comparing
# --------------------------------------------------------------------------------------------------

def load_weights(folder: Path, variant: str | None = None) -> dict:
    """All tensors of a diffusers component folder (single file, sharded index, or .bin)."""
    import safetensors.torch as st

    v = f".{variant}" if variant else ""
    single = folder / f"diffusion_pytorch_model{v}.safetensors"
    if single.exists():
        return st.load_file(single)
    for idx in (folder / f"diffusion_pytorch_model.safetensors.index{v}.json",
                folder / f"diffusion_pytorch_model{v}.safetensors.index.json"):
        if idx.exists():
            files = sorted(set(json.loads(idx.read_text())["weight_map"].values()))
            out = {}
            for f in files:
                out.update(st.load_file(folder / f))
            return out
    binf = folder / f"diffusion_pytorch_model{v}.bin"
    if binf.exists():
        return torch.load(binf, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"no diffusion_pytorch_model weights in {folder}")


def raw_bytes(t: torch.Tensor) -> bytes:
    c = t.detach().cpu().contiguous().reshape(-1)
    return c.view(torch.uint8).numpy().tobytes() if c.numel() else b""


def compare_bitwise(got: dict, want: dict, what: str = "") -> list:
    """Problems (empty = identical): key sets, then dtype, shape and bytes of every tensor."""
    problems = []
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if missing:
        problems.append(f"{len(missing)} missing{what} (e.g. {missing[:3]})")
    if extra:
        problems.append(f"{len(extra)} unexpected{what} (e.g. {extra[:3]})")
    for k, w in want.items():
        if k not in got:
            continue
        g = got[k]
        if g.dtype != w.dtype:
            problems.append(f"{k}: dtype {g.dtype} != {w.dtype}")
        elif tuple(g.shape) != tuple(w.shape):
            problems.append(f"{k}: shape {tuple(g.shape)} != {tuple(w.shape)}")
        elif raw_bytes(g) != raw_bytes(w):
            diff = float((g.double() - w.double()).abs().max())
            problems.append(f"{k}: values differ (max abs {diff:.3g})")
    return problems


def fixed_inputs(in_channels: int = 4, size: int = 8, batch: int = 3):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(batch, in_channels, size, size, generator=g)
    t = torch.tensor([0, 250, 999][:batch])
    y = torch.tensor([0, 7, 10][:batch])
    return x, t, y


def tiny_original(sd: dict | None = None, **overrides) -> dit_original.DiT:
    cfg = dict(dit_original.TINY_CONFIG)
    cfg.update(overrides)
    model = dit_original.DiT(**cfg)
    if sd is not None:
        model.load_state_dict(sd, strict=True)
    model.eval()
    return model


@contextlib.contextmanager
def quiet():
    """Silence diffusers' progress bars and the 'accelerate not found' notice."""
    buf_out, buf_err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
        yield


# --------------------------------------------------------------------------------------------------
# Converters: ditkit, or a Python stand-in that tests this script
# --------------------------------------------------------------------------------------------------

class ConvertResult:
    def __init__(self, code: int, stdout: str = "", stderr: str = ""):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def tail(self) -> str:
        text = (self.stderr or self.stdout).strip().splitlines()
        return " | ".join(text[-3:])


class Ditkit:
    name = "ditkit"

    def __init__(self, binary: str):
        self.binary = binary
        self.extra = []

    def available(self) -> tuple[bool, str]:
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            return False, f"{self.binary} does not exist (build it: swift build -c release --product ditkit)"
        r = subprocess.run([self.binary, "convert", "--help"], capture_output=True, text=True)
        text = r.stdout + r.stderr
        # An unknown subcommand followed by --help prints the ROOT help with status 0: look for the usage line.
        if r.returncode == 0 and "ditkit convert" in text:
            # Heads are not in the weights and D 32 matches no preset: every tiny fixture has 2 heads.
            if "--heads" in text:
                self.extra = ["--heads", str(dit_original.TINY_CONFIG["num_heads"])]
            return True, ""
        return False, (f"`{self.binary} convert --help` exits {r.returncode} without a convert usage line: "
                       "ditkit has no `convert` subcommand yet")

    def convert(self, src: Path, out: Path, to: str, *extra: str) -> ConvertResult:
        cmd = [self.binary, "convert", str(src), "-o", str(out), "--to", to, *extra, *self.extra]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return ConvertResult(r.returncode, r.stdout, r.stderr)


class Standin:
    """A deliberately plain Python converter with ditkit's CLI contract (subset). Tests this script only."""
    name = "python stand-in"

    def __init__(self, fault: str | None = None):
        self.fault = fault

    def available(self):
        return True, ""

    # -- reading ------------------------------------------------------------------------------------
    def read(self, src: Path):
        """-> (layout, state dict in that layout's names, diffusers config or None)"""
        if src.is_dir():
            folder = src / "transformer" if (src / "model_index.json").exists() else src
            cfg = json.loads((folder / "config.json").read_text())
            return "diffusers", load_weights(folder), cfg
        obj = torch.load(src, map_location="cpu", weights_only=True)
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and any(
                k.startswith("model.patch_embedding_layer.") for k in obj["model"]):
            return "cerebras", cerebras_reference.strip_prefix(obj), None
        return "original", obj, None

    def to_original(self, layout, sd, cfg):
        if layout == "original":
            return collections.OrderedDict(sd)
        if layout == "cerebras":
            return cerebras_reference.to_original_state_dict(sd)
        # diffusers -> original: embedders from block 0, qkv stacked, pos_embed recomputed
        d = sd["pos_embed.proj.weight"].shape[0]
        grid = cfg["sample_size"] // cfg["patch_size"]
        table = torch.from_numpy(dit_original.sincos_2d_table(d, grid)).float().unsqueeze(0)
        out = {"pos_embed": table, "x_embedder.proj.weight": sd["pos_embed.proj.weight"],
               "x_embedder.proj.bias": sd["pos_embed.proj.bias"]}
        b0 = "transformer_blocks.0.norm1.emb."
        for s in ("weight", "bias"):
            out[f"t_embedder.mlp.0.{s}"] = sd[b0 + f"timestep_embedder.linear_1.{s}"]
            out[f"t_embedder.mlp.2.{s}"] = sd[b0 + f"timestep_embedder.linear_2.{s}"]
            out[f"final_layer.adaLN_modulation.1.{s}"] = sd[f"proj_out_1.{s}"]
            out[f"final_layer.linear.{s}"] = sd[f"proj_out_2.{s}"]
        out["y_embedder.embedding_table.weight"] = sd[b0 + "class_embedder.embedding_table.weight"]
        for i in range(cfg["num_layers"]):
            b, o = f"transformer_blocks.{i}.", f"blocks.{i}."
            for s in ("weight", "bias"):
                out[o + f"attn.qkv.{s}"] = torch.cat([sd[b + f"attn1.to_{x}.{s}"] for x in "qkv"])
                out[o + f"attn.proj.{s}"] = sd[b + f"attn1.to_out.0.{s}"]
                out[o + f"mlp.fc1.{s}"] = sd[b + f"ff.net.0.proj.{s}"]
                out[o + f"mlp.fc2.{s}"] = sd[b + f"ff.net.2.{s}"]
                out[o + f"adaLN_modulation.1.{s}"] = sd[b + f"norm1.linear.{s}"]
        order = [k for k, _ in dit_original.state_dict_shapes("DiT-S/2")]  # key order pattern of the original
        rank = {k: i for i, k in enumerate(order)}

        def key(k):
            if k.startswith("blocks."):
                i = int(k.split(".")[1])
                return (1, i, rank.get("blocks.0." + k.split(".", 2)[2], 0))
            return (0 if not k.startswith("final_layer") else 2, 0, rank.get(k, 0))
        return collections.OrderedDict(sorted(out.items(), key=lambda kv: key(kv[0])))

    # -- writing ------------------------------------------------------------------------------------
    def corrupt(self, sd: dict) -> dict:
        sd = collections.OrderedDict((k, v.clone()) for k, v in sd.items())
        if self.fault == "flip":
            k = next(k for k, v in sd.items() if v.dtype.is_floating_point and k.endswith("weight"))
            sd[k].reshape(-1)[:1].view(torch.uint8)[0] ^= 1      # lowest mantissa bit of element 0 (little-endian)
        elif self.fault == "swap-qk":
            for s in ("weight", "bias"):
                a, b = f"transformer_blocks.0.attn1.to_q.{s}", f"transformer_blocks.0.attn1.to_k.{s}"
                if a in sd:
                    sd[a], sd[b] = sd[b], sd[a]
        return sd

    def convert(self, src: Path, out: Path, to: str, *extra: str) -> ConvertResult:
        try:
            layout, sd, cfg = self.read(src)
            orig = self.to_original(layout, sd, cfg)
            if to == "original":
                torch.save(self.corrupt(orig), out)
            elif to == "diffusers":
                self.write_diffusers(orig, out, component_only="--component-only" in extra)
            elif to == "cerebras":
                self.write_cerebras(orig, out, drop_sigma="--drop-sigma" in extra)
            else:
                return ConvertResult(2, stderr=f"stand-in: --to {to} not implemented")
            return ConvertResult(0)
        except ValueError as e:
            return ConvertResult(1, stderr=f"stand-in refused: {e}")

    def write_diffusers(self, orig: dict, out: Path, component_only: bool):
        from diffusers import DDIMScheduler, DiTTransformer2DModel

        h = original_hyperparameters(orig)
        kw = dict(num_attention_heads=h["heads"], attention_head_dim=h["hidden"] // h["heads"],
                  in_channels=h["in_channels"], out_channels=h["out_channels"], num_layers=h["depth"],
                  patch_size=h["patch"], sample_size=h["sample_size"], num_embeds_ada_norm=h["num_classes"])
        sd = {}
        sd["pos_embed.proj.weight"], sd["pos_embed.proj.bias"] = orig["x_embedder.proj.weight"], orig["x_embedder.proj.bias"]
        for i in range(h["depth"]):
            b, o = f"transformer_blocks.{i}.", f"blocks.{i}."
            for s in ("weight", "bias"):
                sd[b + f"norm1.emb.timestep_embedder.linear_1.{s}"] = orig[f"t_embedder.mlp.0.{s}"]
                sd[b + f"norm1.emb.timestep_embedder.linear_2.{s}"] = orig[f"t_embedder.mlp.2.{s}"]
                sd[b + f"norm1.linear.{s}"] = orig[o + f"adaLN_modulation.1.{s}"]
                d = h["hidden"]
                qkv = orig[o + f"attn.qkv.{s}"]
                for j, x in enumerate("qkv"):
                    sd[b + f"attn1.to_{x}.{s}"] = qkv[j * d:(j + 1) * d]
                sd[b + f"attn1.to_out.0.{s}"] = orig[o + f"attn.proj.{s}"]
                sd[b + f"ff.net.0.proj.{s}"] = orig[o + f"mlp.fc1.{s}"]
                sd[b + f"ff.net.2.{s}"] = orig[o + f"mlp.fc2.{s}"]
            sd[b + "norm1.emb.class_embedder.embedding_table.weight"] = orig["y_embedder.embedding_table.weight"]
        for s in ("weight", "bias"):
            sd[f"proj_out_1.{s}"] = orig[f"final_layer.adaLN_modulation.1.{s}"]
            sd[f"proj_out_2.{s}"] = orig[f"final_layer.linear.{s}"]
        with quiet():
            model = DiTTransformer2DModel(**kw)
            model.load_state_dict(self.corrupt(sd), strict=True)
            if component_only:
                model.save_pretrained(out, safe_serialization=True)
                return
            out.mkdir(parents=True, exist_ok=False)
            model.save_pretrained(out / "transformer", safe_serialization=True)
            DDIMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
                          prediction_type="epsilon", clip_sample=False).save_pretrained(out / "scheduler")
        import diffusers
        mi = {"_class_name": "DiTPipeline", "_diffusers_version": diffusers.__version__,
              "scheduler": ["diffusers", "DDIMScheduler"], "transformer": ["diffusers", "DiTTransformer2DModel"],
              "vae": [None, None]}
        (out / "model_index.json").write_text(json.dumps(mi, indent=2) + "\n")

    def write_cerebras(self, orig: dict, out: Path, drop_sigma: bool):
        h = original_hyperparameters(orig)
        c, p, d = h["in_channels"], h["patch"], h["hidden"]
        w, bias = orig["final_layer.linear.weight"], orig["final_layer.linear.bias"]
        if h["out_channels"] != c:
            if not drop_sigma:
                raise ValueError("learned sigma: the Cerebras head has no sigma channels (pass --drop-sigma)")
            keep = torch.tensor([(pq * h["out_channels"]) + ch for pq in range(p * p) for ch in range(c)])
            w, bias = w[keep], bias[keep]
        per_pos = bias.reshape(p * p, c)
        if not bool((per_pos == per_pos[0]).all()):
            raise ValueError("final_layer.linear.bias differs between patch positions: no ConvTranspose2d bias")
        ref = cerebras_reference.CerebrasDiT(hidden_size=d, depth=h["depth"], num_heads=h["heads"],
                                             ffn_size=orig["blocks.0.mlp.fc1.weight"].shape[0], patch_size=p,
                                             in_channels=c, num_classes=h["num_classes"],
                                             input_size=h["sample_size"])
        sd = ref.state_dict()
        sd["patch_embedding_layer.linear_proj.weight"] = orig["x_embedder.proj.weight"]
        sd["patch_embedding_layer.linear_proj.bias"] = orig["x_embedder.proj.bias"]
        sd["patch_embedding_layer.position_embeddings"] = orig["pos_embed"][0]
        for j, o in ((0, 0), (1, 2)):
            for s in ("weight", "bias"):
                sd[f"timestep_embedding_layer.ffn.ffn.{j}.linear_layer.{s}"] = orig[f"t_embedder.mlp.{o}.{s}"]
        sd["label_embedding_layer.weight"] = orig["y_embedder.embedding_table.weight"]
        six = ("norm1.shift_linear.1", "norm1.scale_linear.1", "gate_msa.1",
               "norm3.shift_linear.1", "norm3.scale_linear.1", "gate_mlp.1")
        for i in range(h["depth"]):
            b, o = f"transformer_decoder.layers.{i}.", f"blocks.{i}."
            for s in ("weight", "bias"):
                for x, part in zip("qkv", orig[o + f"attn.qkv.{s}"].chunk(3)):
                    sd[b + f"self_attn.proj_{x}_dense_layer.{s}"] = part
                sd[b + f"self_attn.proj_output_dense_layer.{s}"] = orig[o + f"attn.proj.{s}"]
                for name, part in zip(six, orig[o + f"adaLN_modulation.1.{s}"].chunk(6)):
                    sd[b + f"{name}.{s}"] = part
                sd[b + f"ffn.ffn.0.linear_layer.{s}"] = orig[o + f"mlp.fc1.{s}"]
                sd[b + f"ffn.ffn.1.linear_layer.{s}"] = orig[o + f"mlp.fc2.{s}"]
        for s in ("weight", "bias"):
            shift, scale = orig[f"final_layer.adaLN_modulation.1.{s}"].chunk(2)
            sd[f"final_norm.shift_linear.1.{s}"], sd[f"final_norm.scale_linear.1.{s}"] = shift, scale
        sd["noise_head.conv_transpose.weight"] = w.reshape(p, p, c, d).permute(3, 2, 0, 1)
        sd["noise_head.conv_transpose.bias"] = per_pos[0]
        ref.load_state_dict(sd, strict=True)
        torch.save(cerebras_reference.checkpoint(ref, global_step=0), out)


# --------------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------------

class Checks:
    def __init__(self, converter, work: Path):
        self.conv = converter
        self.work = work
        self.results = []   # (status, name)
        self.outputs = {}   # name -> Path of successful conversions

    def line(self, status: str, name: str, detail: str = ""):
        print(f"{status:<4}  {name}" + (f"  -- {detail}" if detail else ""), flush=True)
        if status in ("PASS", "FAIL", "SKIP"):
            self.results.append((status, name))

    def check(self, name: str, fn, *args):
        """fn returns None/str (PASS with optional detail) or raises AssertionError/other (FAIL)."""
        try:
            detail = fn(*args)
            self.line("PASS", name, detail or "")
            return True
        except AssertionError as e:
            self.line("FAIL", name, str(e) or "assertion failed")
        except Exception as e:  # noqa: BLE001
            tb = traceback.format_exc(limit=2).strip().splitlines()[-1]
            self.line("FAIL", name, f"{type(e).__name__}: {e}"[:600] + ("" if str(e) else f" ({tb})"))
        return False

    def info(self, text: str):
        self.line("INFO", text)

    def convert(self, label: str, src: Path, to: str, *extra: str, out_name: str | None = None) -> Path | None:
        out = self.work / (out_name or label)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        try:
            r = self.conv.convert(src, out, to, *extra)
        except Exception as e:  # noqa: BLE001  (a crash of the stand-in, or of subprocess itself)
            r = ConvertResult(-1, stderr=f"{type(e).__name__}: {e}")
        args = " ".join(extra)
        name = f"convert {src.relative_to(ROOT) if src.is_relative_to(ROOT) else src} --to {to}{' ' + args if args else ''}"

        def ok():
            assert r.code == 0, f"exit {r.code}: {r.tail()}"
            assert out.exists(), f"exit 0 but {out} was not written"
        if self.check(name + " exits 0", ok):
            self.outputs[label] = out
            return out
        return None

    # ---------------------------------------------------------------------------------------- a)
    def reference_selfcheck(self, src_sd):
        """The re-implemented upstream mapping reproduces the committed diffusers fixture bit for bit."""
        def run():
            model, mapped = upstream_reference_model(src_sd)
            fixture = load_weights(DIFF_TRANSFORMER)
            problems = compare_bitwise(fixture, {k: v.contiguous() for k, v in mapped.items()})
            assert not problems, "; ".join(problems[:5])
            problems = compare_bitwise(fixture, model.state_dict())
            assert not problems, "; ".join(problems[:5])
            return f"{len(mapped)} tensors"
        self.check("reference: diffusers' conversion mapping (re-implemented) == fixtures/checkpoints/diffusers/"
                   "transformer, bit for bit", run)

    def check_diffusers_folder(self, folder: Path, src_sd: dict, component_only: bool):
        from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

        tag = "component" if component_only else "pipeline"
        tdir = folder if component_only else folder / "transformer"
        ref_model, mapped = upstream_reference_model(src_sd)
        want = {k: v.contiguous() for k, v in mapped.items()}
        kwargs = upstream_transformer_kwargs(src_sd)

        if not component_only:
            def layout():
                mi = json.loads((folder / "model_index.json").read_text())
                assert mi.get("_class_name") == "DiTPipeline", f"_class_name {mi.get('_class_name')!r}"
                assert mi.get("transformer") in (["diffusers", "DiTTransformer2DModel"],
                                                 ["diffusers", "Transformer2DModel"]), f"transformer {mi.get('transformer')}"
                assert mi.get("scheduler") == ["diffusers", "DDIMScheduler"], f"scheduler {mi.get('scheduler')}"
                assert mi.get("vae") == [None, None], f"vae {mi.get('vae')} (expected [null, null])"
                for f in ("transformer/config.json", "scheduler/scheduler_config.json"):
                    assert (folder / f).is_file(), f"{f} missing"
                assert not (folder / "vae").exists(), "a vae folder was written"
                extra = sorted(k for k in mi if not k.startswith("_") and k not in ("transformer", "scheduler", "vae"))
                return f"id2label: {'yes' if 'id2label' in mi else 'no'}" + (f"; other keys {extra}" if extra else "")
            self.check(f"a/{tag}: model_index.json parses; DiTPipeline with transformer, scheduler, vae [null, null]",
                       layout)
        else:
            def layout():
                assert (folder / "config.json").is_file(), "config.json missing"
                assert not (folder / "model_index.json").exists(), "model_index.json in a component folder"
            self.check(f"a/{tag}: OUT is the transformer folder itself (config.json, no model_index.json)", layout)

        def config():
            cfg = json.loads((tdir / "config.json").read_text())
            assert cfg.get("_class_name") in ("DiTTransformer2DModel", "Transformer2DModel"), cfg.get("_class_name")
            bad = [f"{k}: {cfg.get(k)!r} != {v!r}" for k, v in kwargs.items() if cfg.get(k) != v]
            assert not bad, "; ".join(bad)
            return f"norm_eps {cfg.get('norm_eps', 'absent (diffusers default 1e-5)')}"
        self.check(f"a/{tag}: transformer/config.json has the upstream script's hyper-parameters", config)

        loaded = {}

        def from_pretrained():
            with quiet():
                if component_only:
                    m, info = DiTTransformer2DModel.from_pretrained(folder, output_loading_info=True)
                else:
                    m, info = DiTTransformer2DModel.from_pretrained(folder, subfolder="transformer",
                                                                    output_loading_info=True)
            bad = {k: v for k, v in info.items() if v}
            assert not bad, f"loading info {bad}"
            loaded["model"] = m.eval()
        self.check(f"a/{tag}: DiTTransformer2DModel.from_pretrained (no missing/unexpected/mismatched keys)",
                   from_pretrained)

        def bitwise():
            got = load_weights(tdir)
            problems = compare_bitwise(got, want, " tensors")
            assert not problems, f"{len(problems)} problems: " + "; ".join(problems[:4])
            if "model" in loaded:
                problems = compare_bitwise(loaded["model"].state_dict(), ref_model.state_dict())
                assert not problems, "after from_pretrained: " + "; ".join(problems[:4])
            return f"{len(want)} tensors identical"
        self.check(f"a/{tag}: every tensor == diffusers' own conversion, bit for bit", bitwise)

        def numerics():
            assert "model" in loaded, "model did not load"
            m = loaded["model"]
            x, t, y = fixed_inputs()
            ref = tiny_original(src_sd)
            with torch.no_grad():
                want_out = ref(x, t, y)
                default = m(x, t, y).sample
                for block in m.transformer_blocks:       # the two documented numerical differences
                    block.norm1.emb.time_proj.downscale_freq_shift = 0
                    block.norm3.eps = 1e-6
                patched = m(x, t, y).sample
            d = float((patched - want_out).abs().max())
            assert d <= 1e-5, f"max abs diff {d:.3g}"
            return f"patched {d:.3g}; with diffusers' defaults {float((default - want_out).abs().max()):.3g}"
        self.check(f"a/{tag}: diffusers forward == dit_original within 1e-5 (freq shift 0, norm3 eps 1e-6)", numerics)

        if component_only:
            return

        def scheduler():
            with quiet():
                s = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
            want_cfg = DDIMScheduler(**UPSTREAM_SCHEDULER).config
            keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type",
                    "clip_sample", "trained_betas")
            bad = [f"{k}: {s.config.get(k)!r} != {want_cfg.get(k)!r}" for k in keys if s.config.get(k) != want_cfg.get(k)]
            assert not bad, "; ".join(bad)
        self.check("a/pipeline: scheduler loads as DDIMScheduler with the upstream script's settings", scheduler)

        def pipeline_no_vae():
            with quiet():
                pipe = DiTPipeline.from_pretrained(folder, vae=None)
            assert pipe.vae is None and pipe.transformer is not None and pipe.scheduler is not None
            return f"transformer {type(pipe.transformer).__name__}, scheduler {type(pipe.scheduler).__name__}"
        self.check("a/pipeline: DiTPipeline.from_pretrained(OUT, vae=None) loads", pipeline_no_vae)

        def pipeline_with_vae():
            full = self.work / "diffusers-with-vae"
            if full.exists():
                shutil.rmtree(full)
            shutil.copytree(folder, full)
            shutil.copytree(DIFF_PIPELINE / "vae", full / "vae")
            mi = json.loads((full / "model_index.json").read_text())
            mi["vae"] = ["diffusers", "AutoencoderKL"]
            (full / "model_index.json").write_text(json.dumps(mi, indent=2) + "\n")
            with quiet():
                pipe = DiTPipeline.from_pretrained(full)
                image = pipe(class_labels=[1, 7], num_inference_steps=3, guidance_scale=1.0,
                             generator=torch.Generator().manual_seed(0), output_type="np").images
                # the same pipeline with the reference transformer (diffusers' own conversion, same config)
                ref_t = type(pipe.transformer).from_config(pipe.transformer.config)
                ref_t.load_state_dict(ref_model.state_dict(), strict=True)
                ref_pipe = DiTPipeline(transformer=ref_t.eval(), vae=pipe.vae, scheduler=pipe.scheduler)
                ref_image = ref_pipe(class_labels=[1, 7], num_inference_steps=3, guidance_scale=1.0,
                                     generator=torch.Generator().manual_seed(0), output_type="np").images
            import numpy as np
            assert image.shape == (2, 64, 64, 3) and np.isfinite(image).all(), f"image {image.shape}"
            assert np.array_equal(image, ref_image), f"images differ by {np.abs(image - ref_image).max():.3g}"
            return ("3 DDIM steps, 2 classes, no guidance (DiTPipeline hard-codes null class 1000), 64x64 images "
                    "identical to the reference pipeline's")
        self.check("a/pipeline: with the fixture VAE copied in, DiTPipeline.from_pretrained loads and samples",
                   pipeline_with_vae)

    def convert_rounded_table(self, label: str, src: Path) -> Path | None:
        """bf16 Cerebras -> original. The file's frozen tables (timestep table, diffusion tables) are rounded to
        bf16 while the original layout recomputes or omits them, so converting changes the model slightly:
        refusing and naming the table with a `--drop NAME` way out is correct, and so is converting. On each such
        refusal, retry with that --drop added (at most 6 times)."""
        import re

        out = self.work / label
        drops: list = []
        name = f"convert {src.relative_to(ROOT)} --to original"
        for _ in range(6):
            extra = [a for d in drops for a in ("--drop", d)]
            try:
                r = self.conv.convert(src, out, "original", *extra)
            except Exception as e:  # noqa: BLE001
                r = ConvertResult(-1, stderr=f"{type(e).__name__}: {e}")
            if r.code == 0:
                self.line("PASS", f"{name}{' ' + ' '.join(extra) if extra else ''} exits 0",
                          f"after refusals naming {drops}" if drops else "")
                self.outputs[label] = out
                return out
            message = r.stderr + r.stdout
            m = re.search(r"--drop[ =]([A-Za-z0-9_.\-]*[A-Za-z0-9_])", message)
            if not (m and "table" in message.lower() or m and "cumprod" in message) or m.group(1) in drops:
                self.line("FAIL", f"{name}{' ' + ' '.join(extra) if extra else ''} exits 0",
                          f"exit {r.code}: {r.tail()[:300]}")
                return None
            self.line("INFO", f"{name}: refused, naming a bf16-rounded frozen table: {r.tail()[:200]}")
            drops.append(m.group(1))
        self.line("FAIL", f"{name} exits 0", f"still refused after --drop {drops}")
        return None

    # ---------------------------------------------------------------------------------------- b)
    def check_original_output(self, label: str, path: Path, src_sd: dict):
        holder = {}

        def load():
            sd = torch.load(path, map_location="cpu", weights_only=True)
            assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values()), \
                f"not a bare state dict: {type(sd).__name__} with keys {list(sd)[:4]}"
            holder["sd"] = sd
            holder["model"] = tiny_original(sd)          # load_state_dict(strict=True)
            order = "same key order" if list(sd) == list(src_sd) else "different key order"
            return f"{len(sd)} tensors, {order}"
        if not self.check(f"b/{label}: torch.load(weights_only=True) + load_state_dict(strict=True)", load):
            return

        def forward():
            x, t, y = fixed_inputs()
            with torch.no_grad():
                got = holder["model"](x, t, y)
                want = tiny_original(src_sd)(x, t, y)
            assert torch.equal(got, want), f"max abs diff {float((got - want).abs().max()):.3g}"
        self.check(f"b/{label}: forward output torch.equal to the source model's", forward)

        def tensors():
            problems = compare_bitwise(holder["sd"], dict(src_sd))
            assert not problems, "; ".join(problems[:4])
        self.check(f"b/{label}: every tensor equals tiny-dit.pt's, bit for bit", tensors)

    # ---------------------------------------------------------------------------------------- c)
    def check_cerebras_to_original(self, label: str, path: Path, source: Path, tol: float):
        src_ck = torch.load(source, map_location="cpu", weights_only=True)
        ref = cerebras_reference.from_state_dict(src_ck)
        # The original layout has no timestep table (it is recomputed), so compare with the exact float32 table
        # even when the source stores a rounded (bf16) copy; for f32 sources this changes nothing.
        table = cerebras_reference.timestep_table()
        table_note = "" if torch.equal(ref.timestep_embedding_layer.timestep_embedding, table) else \
            "; reference uses the exact f32 timestep table, not the file's rounded copy"
        ref.timestep_embedding_layer.timestep_embedding.copy_(table)
        holder = {}

        def load():
            sd = torch.load(path, map_location="cpu", weights_only=True)
            assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values()), \
                f"not a bare state dict: {type(sd).__name__}"
            model = dit_original.DiT(**cerebras_reference.original_config(src_ck))
            model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
            holder["sd"], holder["model"] = sd, model.eval()
            dtypes = sorted({str(v.dtype).replace("torch.", "") for v in sd.values()})
            return f"{len(sd)} tensors, dtypes {dtypes}"
        if not self.check(f"c/{label}: torch.load(weights_only=True) + strict load into DiT(learn_sigma=False)",
                          load):
            return

        def mapping():
            want = cerebras_reference.to_original_state_dict(src_ck)
            got = holder["sd"]
            note = ""
            src_dtypes = {v.dtype for v in want.values()}
            got_dtypes = {v.dtype for v in got.values()}
            if got_dtypes != src_dtypes:
                # a widening conversion (bf16 -> f32) is exact: compare the values in float32
                note = f"; dtype {sorted(map(str, src_dtypes))} -> {sorted(map(str, got_dtypes))}, compared as f32"
                got = {k: v.float() for k, v in got.items()}
                want = {k: v.float() for k, v in want.items()}
            problems = compare_bitwise(got, want)
            assert not problems, "; ".join(problems[:4])
            c, p = 4, got["x_embedder.proj.weight"].shape[2]
            bias = got["final_layer.linear.bias"].reshape(p * p, c)
            assert bool((bias == bias[0]).all()), "head bias not replicated per patch position"
            return "qkv/adaLN stacking, head W[(pi*p+qi)*C+c, d] = Wt[d,c,pi,qi], bias repeated p*p times" + note
        self.check(f"c/{label}: tensors == the Cerebras name mapping of the source, bit for bit", mapping)

        def forward():
            x, t, y = fixed_inputs()
            with torch.no_grad():
                want = ref(x, t, y)
                plain = holder["model"](x, t, y)
                got = cerebras_reference.match_original_numerics(holder["model"])(x, t, y)
            d = float((got - want).abs().max())
            assert d <= tol, f"max abs diff {d:.3g} > {tol:g}"
            return (f"max abs diff {d:.3g} (tanh GELU + float32 sinusoid, unpatched: "
                    f"{float((plain - want).abs().max()):.3g}){table_note}")
        self.check(f"c/{label}: erf GELU + integer timesteps: output == cerebras_reference within {tol:g}", forward)

    def check_cerebras_roundtrip(self, path: Path):
        src_ck = torch.load(TINY_CEREBRAS, map_location="cpu", weights_only=True)

        def compare():
            ck = torch.load(path, map_location="cpu", weights_only=True)
            assert isinstance(ck, dict) and isinstance(ck.get("model"), dict), \
                f"expected {{'model': ..., ...}}, got keys {list(ck)[:4] if isinstance(ck, dict) else type(ck)}"
            got, want = ck["model"], src_ck["model"]
            frozen = {"model." + k for k in cerebras_reference.FROZEN}
            problems = compare_bitwise({k: v for k, v in got.items() if k not in frozen},
                                       {k: v for k, v in want.items() if k not in frozen})
            assert not problems, "; ".join(problems[:4])
            notes = []
            for k in sorted(frozen):
                assert k in got, f"{k} missing"
                assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
                d = float((got[k].double() - want[k].double()).abs().max())
                assert d <= 1e-6, f"{k}: max abs diff {d:.3g}"
                if d:
                    notes.append(f"{k.split('.')[-1]} off by {d:.2g}")
            model = cerebras_reference.from_state_dict(ck)          # strict
            x, t, y = fixed_inputs()
            with torch.no_grad():
                d = float((model(x, t, y) - cerebras_reference.from_state_dict(src_ck)(x, t, y)).abs().max())
            assert d <= 1e-6, f"forward differs by {d:.3g}"
            order = "same key order" if list(got) == list(want) else "different key order"
            extra = {k: v for k, v in ck.items() if k != "model"}
            return (f"trainable tensors identical, frozen tables {'bit-identical' if not notes else '; '.join(notes)}, "
                    f"{order}, other entries {extra}")
        self.check("c/cerebras -> original -> cerebras: tensors == tiny-cerebras.pt (frozen tables within 1e-6), "
                   "loads into cerebras_reference", compare)

    def check_sigma_refusal(self):
        for extra in ((), ("--drop-sigma",)):
            out = self.work / ("sigma-refusal" + "".join(extra) + ".pt")
            try:
                r = self.conv.convert(TINY_DIT, out, "cerebras", *extra)
            except Exception as e:  # noqa: BLE001
                r = ConvertResult(-1, stderr=f"{type(e).__name__}: {e}")

            def verdict(r=r, out=out, extra=extra):
                if r.code != 0:
                    return f"refused (exit {r.code}): {r.tail()[:200]}"
                assert extra, "exit 0 without --drop-sigma: the 4 sigma channels would be dropped silently"
                # accepted with --drop-sigma: then the result must compute the original's first 4 channels
                ck = torch.load(out, map_location="cpu", weights_only=True)
                model = cerebras_reference.from_state_dict(ck)
                x, t, y = fixed_inputs()
                with torch.no_grad():
                    want = tiny_original(torch.load(TINY_DIT, weights_only=True))(x, t, y)[:, :4]
                    got = model(x, t, y)
                d = float((got - want).abs().max())
                assert d <= 1e-4, (f"exit 0 but the Cerebras model's output differs from the original's first 4 "
                                   f"channels by {d:.3g} (tiny-dit's head bias differs per patch position)")
            name = "c/tiny-dit.pt (learned sigma, per-position head bias) --to cerebras" + \
                   (" --drop-sigma" if extra else "") + ": refused, or the result is exact"
            self.check(name, verdict)


# --------------------------------------------------------------------------------------------------
# d) Cerebras .mdl
# --------------------------------------------------------------------------------------------------

CEREBRAS_PY = Path(os.environ.get("DITKIT_CEREBRAS_PYTHON", str(ROOT / ".venv-cerebras/bin/python")))

# Runs in .venv-cerebras: cerebras.pytorch.load(MDL) materialized into a torch.save file, then the same state
# re-saved with the real cerebras.pytorch.save, and the two HDF5 files compared structure by structure.
CEREBRAS_SIDE = r'''
import sys, json, torch, h5py, hdf5plugin, numpy as np, cerebras.pytorch as cstorch
mdl, pt, resaved, compression = sys.argv[1:5]
def mat(x):
    if isinstance(x, dict): return {k: mat(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)): return type(x)(mat(v) for v in x)
    if isinstance(x, torch.Tensor): return x.clone().contiguous()
    return x
state = mat(cstorch.load(mdl))
torch.save(state, pt)
cstorch.save(state, resaved)
a, b = h5py.File(mdl, "r"), h5py.File(resaved, "r")
problems = []
def scalar(f, key, depth=0):
    """The value of a non-tensor leaf, following the saver's links (it links leaves that are the same Python object:
    CPython's cached small ints make num_heads 2 and patch_size [2, 2] one object when reloaded and saved again)."""
    meta = json.loads(f.attrs[key + ".__metadata__"])[key + ".__metadata__"]
    if meta.get("__TYPE__") == "LinkedObject" and depth < 32:
        return scalar(f, meta["key"], depth + 1)
    return (meta.get("__TYPE__"), meta.get("scalar_value", meta.get("string_value")))
linked = []
def attrs(x, y, where, extra=()):
    kx, ky = set(x.attrs) - set(extra), set(y.attrs)
    if kx != ky: problems.append(f"{where}: attributes differ {sorted(kx ^ ky)[:4]}")
    for k in kx & ky:
        vx, vy = x.attrs[k], y.attrs[k]
        if x.attrs.get_id(k).dtype != y.attrs.get_id(k).dtype or x.attrs.get_id(k).shape != y.attrs.get_id(k).shape:
            problems.append(f"{where}: attribute {k} type/shape differs")
        elif isinstance(vx, np.ndarray) and not np.array_equal(vx, vy) or not isinstance(vx, np.ndarray) and vx != vy:
            leaf = k[: -len(".__metadata__")] if where == "/" and k.endswith(".__metadata__") else None
            if leaf is not None and leaf not in a and scalar(a, leaf) == scalar(b, leaf):
                linked.append(leaf)  # the same value, one side stored through a link to an equal object
            else:
                problems.append(f"{where}: attribute {k} differs")
attrs(a, b, "/", extra=("__written_by__",))
def datasets(f):
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(out)
if datasets(a) != datasets(b): problems.append("dataset names differ")
chunks = 0
for n in datasets(a):
    if n not in b: continue
    x, y = a[n], b[n]
    if compression == "none":  # the real saver always compresses: storage is compared in the LZ4 files
        if (x.dtype, x.shape) != (y.dtype, y.shape): problems.append(f"{n}: dtype or shape differs")
    elif (x.dtype, x.shape, x.chunks, dict(x._filters)) != (y.dtype, y.shape, y.chunks, dict(y._filters)):
        problems.append(f"{n}: {(x.dtype, x.shape, x.chunks, dict(x._filters))} vs {(y.dtype, y.shape, y.chunks, dict(y._filters))}")
    if x[...].tobytes() != y[...].tobytes(): problems.append(f"{n}: elements differ")
    attrs(x, y, n)
    if x.chunks and compression != "none":
        nx = x.id.get_num_chunks()
        if nx != y.id.get_num_chunks(): problems.append(f"{n}: chunk counts differ"); continue
        with open(mdl, "rb") as fx, open(resaved, "rb") as fy:
            for i in range(nx):
                cx, cy = x.id.get_chunk_info(i), y.id.get_chunk_info(i)
                fx.seek(cx.byte_offset); fy.seek(cy.byte_offset)
                if cx.chunk_offset != cy.chunk_offset or fx.read(cx.size) != fy.read(cy.size):
                    problems.append(f"{n}: chunk {cx.chunk_offset} differs"); break
                chunks += 1
print(json.dumps({"problems": problems, "datasets": len(datasets(a)), "chunks": chunks, "linked": linked}))
'''


class MDLChecks:
    """d) `.mdl` files written by ditkit, read by h5py + hdf5plugin and by cerebras.pytorch.load."""

    def __init__(self, checks: Checks):
        self.checks = checks

    def h5py_reads(self, label: str, path: Path, source_model: dict, compression: str):
        import h5py
        import hdf5plugin  # noqa: F401  (registers the LZ4 filter)

        def run():
            with h5py.File(path, "r") as f:
                assert f.attrs["__version__"] == 0.5 and f.attrs["__version__"].dtype == "float64", "__version__"
                assert bool(f.attrs["__SUCCESS__"]) and \
                    f.attrs.get_id("__SUCCESS__").get_type().get_class() == h5py.h5t.ENUM, "__SUCCESS__"
                spec = json.loads(f.attrs["__spec__"])
                # The Model Zoo trainer's top level: the model, and the metadata with the run's model parameters.
                assert list(spec[0]) == ["model", "__metadata__"], f"top level {list(spec[0])}"
                names = []
                f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
                want = {"model." + k: v for k, v in source_model.items()}
                missing = sorted(set(want) - set(names))
                assert not missing, f"missing {missing[:3]}"
                for k, v in want.items():
                    d = f[k]
                    meta = json.loads(f.attrs[k + ".__metadata__"])[k + ".__metadata__"]
                    assert meta["dtypes"] == [str(v.dtype)] and meta["shapes"] == [list(v.shape)], f"{k}: metadata {meta}"
                    if v.dtype == torch.bfloat16:
                        assert d.dtype == "int16", f"{k}: bf16 stored as {d.dtype}"
                    got = d[...].tobytes()
                    assert got == raw_bytes(v), f"{k}: elements differ"
                    if compression == "lz4" and v.dim() > 0:
                        assert d.chunks is not None and "32004" in d._filters, f"{k}: not LZ4-chunked"
                    else:
                        assert d.chunks is None, f"{k}: chunked"
                extra = sorted(set(names) - set(want))
            return f"{len(want)} datasets bit-identical" + (f", plus {extra}" if extra else "")
        self.checks.check(f"d/{label}: h5py + hdf5plugin read every tensor bit for bit, with the saver's attributes", run)

    def cerebras_loads(self, label: str, path: Path, source_model: dict, compression: str = "lz4"):
        if not CEREBRAS_PY.exists():
            self.checks.line("SKIP", f"d/{label}: cerebras.pytorch.load", f"no {CEREBRAS_PY}")
            return
        pt = path.with_suffix(".cstorch.pt")
        resaved = path.with_suffix(".resaved.mdl")
        for p in (pt, resaved):
            if p.exists():
                p.unlink()
        r = subprocess.run([str(CEREBRAS_PY), "-c", CEREBRAS_SIDE, str(path), str(pt), str(resaved), compression],
                           capture_output=True, text=True)

        def loads():
            assert r.returncode == 0, (r.stderr or r.stdout).strip().splitlines()[-1:]
            state = torch.load(pt, map_location="cpu", weights_only=True)
            assert list(state) == ["model", "__metadata__"], f"top level {list(state)}"
            params = state["__metadata__"][-1]["params"]["trainer"]["init"]["model"]
            assert params["num_heads"] > 0 and params["hidden_size"] > 0, f"__metadata__ params {params}"
            got, want = state["model"], source_model
            assert set(got) == set(want), f"keys differ: {sorted(set(got) ^ set(want))[:4]}"
            problems = compare_bitwise(got, want)
            assert not problems, "; ".join(problems[:4])
            order = "same key order" if list(got) == list(want) else "key order of ditkit's plan (not the source's)"
            return f"{len(got)} tensors, same dtypes and bits, {order}"
        self.checks.check(f"d/{label}: cerebras.pytorch.load returns the same state dict", loads)

        def layout():
            assert r.returncode == 0, "cerebras.pytorch.load failed"
            report = json.loads(r.stdout.strip().splitlines()[-1])
            assert not report["problems"], "; ".join(report["problems"][:4])
            links = report.get("linked", [])
            return (f"{report['datasets']} datasets, {report['chunks']} chunks byte-identical"
                    + (f"; {len(links)} metadata values the resave stores as links to an equal value ({links[0]}, …)" if links else ""))
        self.checks.check(f"d/{label}: the real cerebras.pytorch.save lays the same state out the same way", layout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ditkit", default=os.environ.get("DITKIT_BIN", str(ROOT / ".build/release/ditkit")))
    ap.add_argument("--standin", action="store_true", help="use the Python stand-in instead of ditkit")
    ap.add_argument("--standin-fault", choices=["flip", "swap-qk"], help="make the stand-in write wrong outputs")
    ap.add_argument("--workdir", help="write outputs here (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--only", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    args = ap.parse_args()
    parts = set(args.only.split(","))

    torch.set_num_threads(1)
    converter = Standin(args.standin_fault) if args.standin else Ditkit(args.ditkit)
    print(f"interop: converter = {converter.name}" + (f" ({converter.binary})" if isinstance(converter, Ditkit) else ""))
    if args.standin:
        print("interop: NOTE the stand-in tests this script's checks, not ditkit")

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ditkit-interop-"))
    work.mkdir(parents=True, exist_ok=True)
    checks = Checks(converter, work)
    src_sd = torch.load(TINY_DIT, map_location="cpu", weights_only=True)

    if "a" in parts:
        checks.reference_selfcheck(src_sd)
    ok, why = converter.available()
    if ok and getattr(converter, "extra", None):
        print(f"interop: every conversion gets {' '.join(converter.extra)} (the tiny fixtures' head count)")
    if not ok:
        print(f"interop: ditkit convert is NOT AVAILABLE: {why}")
        print("interop: no conversion was checked. Run `scripts/interop --standin` to exercise the checks "
              "with the Python stand-in.")
        failed = [n for s, n in checks.results if s == "FAIL"]
        return 1 if failed else 2

    try:
        if "a" in parts:
            out = checks.convert("diffusers", TINY_DIT, "diffusers")
            if out:
                checks.check_diffusers_folder(out, src_sd, component_only=False)
            out = checks.convert("diffusers-component", TINY_DIT, "diffusers", "--component-only")
            if out:
                checks.check_diffusers_folder(out, src_sd, component_only=True)
        if "b" in parts:
            out = checks.convert("original.pt", TINY_DIT, "original")
            if out:
                checks.check_original_output("tiny-dit.pt -> original", out, src_sd)
            for label, src in (("diffusers/transformer -> original", DIFF_TRANSFORMER),
                               ("diffusers/pipeline -> original", DIFF_PIPELINE)):
                out = checks.convert(label.split(" ")[0].replace("/", "-") + "-original.pt", src, "original")
                if out:
                    checks.check_original_output(label, out, src_sd)
            mid = checks.outputs.get("diffusers")
            if mid is None and "a" not in parts:
                mid = checks.convert("diffusers", TINY_DIT, "diffusers")
            if mid is not None:
                out = checks.convert("chain-original.pt", mid, "original")
                if out:
                    checks.check_original_output("original -> diffusers -> original", out, src_sd)
            else:
                checks.line("SKIP", "b/original -> diffusers -> original (the diffusers conversion failed)")
        if "c" in parts:
            out = checks.convert("cerebras-original.pt", TINY_CEREBRAS, "original")
            if out:
                checks.check_cerebras_to_original("tiny-cerebras.pt -> original", out, TINY_CEREBRAS, 1e-6)
            out = checks.convert_rounded_table("cerebras-bf16-original.pt", TINY_CEREBRAS_BF16)
            if out:
                checks.check_cerebras_to_original("tiny-cerebras-bf16.pt -> original", out, TINY_CEREBRAS_BF16, 1e-6)
            mid = checks.outputs.get("cerebras-original.pt")
            if mid is not None:
                out = checks.convert("cerebras-roundtrip.pt", mid, "cerebras")
                if out:
                    checks.check_cerebras_roundtrip(out)
            checks.check_sigma_refusal()
        if "d" in parts and not args.standin:
            mdl = MDLChecks(checks)
            for label, src, extra in (("tiny-cerebras.pt -> mdl", TINY_CEREBRAS, ()),
                                      ("tiny-cerebras.pt -> mdl --compression none", TINY_CEREBRAS, ("--compression", "none")),
                                      ("tiny-cerebras-bf16.pt -> mdl", TINY_CEREBRAS_BF16, ())):
                model = torch.load(src, map_location="cpu", weights_only=True)["model"]
                name = label.replace(" ", "_").replace(">", "").replace("--", "") + ".mdl"
                out = checks.convert(name, src, "cerebras", "--container", "mdl", *extra)
                if out:
                    compression = "none" if "none" in extra else "lz4"
                    mdl.h5py_reads(label, out, model, compression)
                    mdl.cerebras_loads(label, out, model, compression)
            canonical = checks.convert("tiny-cerebras-canonical.safetensors", TINY_CEREBRAS, "canonical")
            if canonical:
                out = checks.convert("from-canonical.mdl", canonical, "cerebras")
                if out:
                    model = torch.load(TINY_CEREBRAS, map_location="cpu", weights_only=True)["model"]
                    mdl.h5py_reads("canonical -> cerebras (OUT ends in .mdl)", out, model, "lz4")
                    mdl.cerebras_loads("canonical -> cerebras (OUT ends in .mdl)", out, model)
    finally:
        if args.keep or args.workdir:
            print(f"interop: outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    counts = collections.Counter(s for s, _ in checks.results)
    failed = [n for s, n in checks.results if s == "FAIL"]
    print(f"interop: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
          + (" (stand-in, not ditkit)" if args.standin else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
