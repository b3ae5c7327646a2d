#!/usr/bin/env python3
"""Record a PyTorch reference trace of a DiT forward pass, for `ditkit verify --against TRACE`.

    python scripts/torch-trace.py MODEL -o TRACE.safetensors [--kind original|diffusers|cerebras]
           [--seed S] [--batch N] [--timesteps 0,999] [--classes 0,1000] [--layers all|io] [--inputs TRACE]
           [--model-module FILE.py|module] [--model-class DiT] [--model-kwargs JSON]
           [--state ema|model] [--heads H] [--num-classes K] [--input-size S] [--trust-pickle]

MODEL is one of
  * an original DiT checkpoint (facebookresearch/DiT layout: `x_embedder.proj.weight`, `blocks.{i}.…`): a `.pt`
    holding a bare state dict (the released `DiT-XL-2-256x256.pt`) or a `train.py` checkpoint
    `{"model", "ema", "opt", "args"}` (the EMA weights are used, as `sample.py` does; `--state model` picks the raw
    ones), or a `.safetensors` with the same names. `module.` / `_orig_mod.` prefixes are stripped. The weights
    are loaded into `--model-module`/`--model-class` (e.g. `--model-module path/to/DiT/models.py`, class `DiT`
    or a `DiT_models` entry such as `DiT-XL/2`); by default into ditkit's own `fixtures/generate/dit_original.py`,
    which has the upstream names and numerics. The class is built with the upstream constructor arguments
    (input_size, patch_size, in_channels, hidden_size, depth, num_heads, mlp_ratio, class_dropout_prob,
    num_classes, learn_sigma), inferred from the weights; `--model-kwargs '{"...": ...}'` overrides them.
  * a diffusers folder: a pipeline (`model_index.json` + `transformer/`) or a transformer component folder
    (`config.json` + weights), loaded with `DiTTransformer2DModel.from_pretrained` (hub configs that still say
    `Transformer2DModel` go through `Transformer2DModel.from_pretrained`, which builds the same class).
  * a Cerebras Model Zoo DiT checkpoint (`model.model.patch_embedding_layer…`), run through ditkit's from-scratch
    reference `fixtures/generate/cerebras_reference.py` (there is no Cerebras code here). Timesteps must be integers.

The head count is not stored in original or Cerebras weights: it is taken from the preset with the same hidden size
(384: 6, 768: 12, 1024: 16, 1152: 16, 2048: 16; and 32: 2, ditkit's tiny fixtures) or from `--heads`.

Inputs: x ~ N(0, 1) of shape (N, C, S, S) drawn with `torch.Generator().manual_seed(S)`; timesteps cycle over
`--timesteps` (default 0, 999, 500, 250) and class ids over `--classes` (default 0, K, 1, 2, where K = the null
class; `null` is accepted in the list). `--inputs TRACE` reuses `input.x`, `input.t`, `input.y` of an existing trace
instead (then --seed/--batch/--timesteps/--classes are ignored).

Every layer is recorded with FORWARD HOOKS on the real modules (nothing is re-implemented), in float32, eval
mode, under torch.no_grad, with deterministic algorithms requested:

  layer         (shape)          original module               diffusers DiTTransformer2DModel        Cerebras reference
  input.x       (N,C,S,S)        the inputs
  input.t       (N)              timesteps as integer-valued floats
  input.y       (N)              class ids as floats (K = null)
  t_embed       (N,D)            t_embedder output              transformer_blocks[0].norm1.emb         timestep_embedding_layer
                                                                .timestep_embedder output               output (table row -> ffn)
  y_embed       (N,D)            y_embedder output              …norm1.emb.class_embedder output        label_embedding_layer
  cond          (N,D)            2nd input of blocks[0]         transformer_blocks[0].norm1.emb output   2nd input of layers[0]
  patch_embed   (N,T,D)          1st input of blocks[0]         pos_embed output                        patch_embedding_layer
                                 (x_embedder + pos_embed)       (the table is added inside)             output
  blocks.{i}    (N,T,D)          blocks[i] output               transformer_blocks[i] output            transformer_decoder.layers[i]
  final         (N,T,p²·Cout)    final_layer output             proj_out_2 output                       noise_head output rearranged to
                                                                                                        the linear-head layout, column
                                                                                                        (pi·p+qi)·C+c of each token
  output        (N,Cout,S,S)     the model's return value       `.sample`                               the model's return value

A module called more than once (diffusers calls block 0's `norm1.emb` again for the final layer) is recorded at
its first call; later calls are checked to give the same value (a warning is printed otherwise).
`--layers io` keeps only input.* and output.

The trace is a safetensors file, all tensors float32, metadata {"format": "pt", "ditkit.trace": "1",
"ditkit.trace.semantics": "original" | "diffusers" | "cerebras", "ditkit.trace.source": "<what made it>", "ditkit.trace.model": "<JSON: hidden_size, depth, num_heads, patch_size, input_size, in_channels, out_channels, num_classes>"}; it is
written to a temporary file and renamed. The semantics tell the reader which numerics the model has (diffusers:
timestep frequencies divided by 127 instead of 128, MLP pre-norm eps from `norm_eps`; Cerebras: erf GELU, the
float64 timestep table, ConvTranspose head).

Needs torch (+ diffusers for diffusers folders, safetensors). Run with the project venv:
    .venv-fixtures/bin/python scripts/torch-trace.py fixtures/checkpoints/original/tiny-dit.pt -o /tmp/t.safetensors
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import json
import math
import os
import platform
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.dont_write_bytecode = True
warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GENERATE = ROOT / "fixtures" / "generate"

TRACE_VERSION = "1"
KINDS = ("original", "diffusers", "cerebras")
DEFAULT_TIMESTEPS = (0, 999, 500, 250)
HEADS_BY_HIDDEN = {384: 6, 768: 12, 1024: 16, 1152: 16, 2048: 16, 32: 2}   # 32: ditkit's tiny fixtures
INPUT_NAMES = ("input.x", "input.t", "input.y")


class TraceError(Exception):
    """A problem the user can fix (bad model path, missing option, incompatible inputs)."""


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

@dataclass
class Loaded:
    kind: str                       # "original" | "diffusers" | "cerebras"
    model: torch.nn.Module
    config: dict                    # hidden, depth, heads, patch, input_size, in_channels, out_channels, num_classes
    description: str                # for ditkit.trace.source
    notes: list = field(default_factory=list)


def _import_generate(name: str):
    if str(GENERATE) not in sys.path:
        sys.path.insert(0, str(GENERATE))
    return importlib.import_module(name)


def _load_file(path: Path, trust_pickle: bool):
    """A checkpoint file as Python objects. torch files go through the weights-only unpickler, with
    argparse.Namespace allowed (facebookresearch train.py checkpoints store their args as one)."""
    if path.suffix == ".safetensors":
        import safetensors.torch as st
        return st.load_file(str(path))
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise TraceError(f"{path} is a git-lfs pointer file, not the checkpoint (run `git lfs pull`)")
    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the weights-only unpickler refused something
        raise TraceError(f"torch.load(weights_only=True) refused {path}: {str(e).splitlines()[0]}\n"
                         f"  pass --trust-pickle to load it with weights_only=False (only if you trust the file)")


def _is_tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip(sd: dict, prefixes=("module.", "_orig_mod.")) -> dict:
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if sd and all(k.startswith(p) for k in sd):
                sd = collections.OrderedDict((k[len(p):], v) for k, v in sd.items())
                changed = True
    return sd


def _select_state_dict(obj, state: Optional[str], notes: list):
    """The weights inside a checkpoint object: a bare state dict, or train.py's {"model", "ema", ...}, or
    Cerebras' {"model": {"model.<name>": ...}, "global_step"}. Returns (state dict, extra info dict)."""
    extra = {}
    if _is_tensor_dict(obj):
        if state:
            raise TraceError(f"--state {state}: the checkpoint is a bare state dict")
        return collections.OrderedDict(obj), extra
    if not isinstance(obj, dict):
        raise TraceError(f"the checkpoint holds a {type(obj).__name__}, not a state dict")
    if isinstance(obj.get("args"), argparse.Namespace):
        extra["args"] = vars(obj["args"])
    candidates = [k for k in ("ema", "model", "state_dict", "model_state_dict") if _is_tensor_dict(obj.get(k))]
    if state:
        if state not in candidates:
            raise TraceError(f"--state {state}: not in the checkpoint (it has {sorted(obj)})")
        choice = state
    elif candidates:
        choice = candidates[0]     # "ema" first, as facebookresearch sample.py does
    else:
        raise TraceError(f"no state dict found in the checkpoint (top-level keys: {sorted(obj)[:10]})")
    if len(candidates) > 1 or choice != "model":
        notes.append(f"weights from the checkpoint's '{choice}' entry")
    return collections.OrderedDict(obj[choice]), extra


def _detect_layout(sd: dict) -> str:
    if any(k.endswith("patch_embedding_layer.linear_proj.weight") for k in sd):
        return "cerebras"
    if "x_embedder.proj.weight" in sd:
        return "original"
    if "pos_embed.proj.weight" in sd:
        return "diffusers"
    raise TraceError("unknown layout: no x_embedder.proj.weight (original) or "
                     "patch_embedding_layer.linear_proj.weight (Cerebras) in the weights")


def _heads(hidden: int, heads: Optional[int]) -> int:
    if heads:
        if hidden % heads:
            raise TraceError(f"--heads {heads} does not divide the hidden size {hidden}")
        return heads
    if hidden in HEADS_BY_HIDDEN:
        return HEADS_BY_HIDDEN[hidden]
    raise TraceError(f"the head count is not stored in the weights and hidden size {hidden} is no preset's: "
                     f"pass --heads")


def _import_user_module(spec: str):
    p = Path(spec)
    if spec.endswith(".py") or p.exists():
        if not p.exists():
            raise TraceError(f"--model-module {spec}: no such file")
        sys.path.insert(0, str(p.resolve().parent))       # upstream models.py imports its neighbours
        s = importlib.util.spec_from_file_location(p.stem, p)
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
        return mod
    return importlib.import_module(spec)


def original_config(sd: dict, args) -> dict:
    """Upstream DiT constructor arguments inferred from an original-layout state dict (+ command-line overrides)."""
    w = sd["x_embedder.proj.weight"]
    d, c, p, _ = w.shape
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in sd:
        depth += 1
    rows = sd["final_layer.linear.weight"].shape[0]
    if rows % (p * p):
        raise TraceError(f"final_layer.linear.weight has {rows} rows, not a multiple of p² = {p * p}")
    cout = rows // (p * p)
    if cout not in (c, 2 * c):
        raise TraceError(f"{cout} output channels for {c} input channels: expected {c} or {2 * c} (learned sigma)")
    table_rows = sd["y_embedder.embedding_table.weight"].shape[0]
    if args.num_classes is not None:
        k = args.num_classes
        if table_rows not in (k, k + 1):
            raise TraceError(f"--num-classes {k}: the label table has {table_rows} rows")
        dropout = 0.1 if table_rows == k + 1 else 0.0
    else:
        k, dropout = table_rows - 1, 0.1      # the extra row is the null class (class dropout > 0)
    if args.input_size:
        s = args.input_size
    elif "pos_embed" in sd:
        s = math.isqrt(sd["pos_embed"].shape[1]) * p
    else:
        raise TraceError("no pos_embed in the weights: pass --input-size (latent size, image size / 8)")
    return dict(input_size=s, patch_size=p, in_channels=c, hidden_size=d, depth=depth,
                num_heads=_heads(d, args.heads), mlp_ratio=sd["blocks.0.mlp.fc1.weight"].shape[0] / d if depth else 4.0,
                class_dropout_prob=dropout, num_classes=k, learn_sigma=cout == 2 * c)


def load_original(sd: dict, args, extra: dict, notes: list) -> Loaded:
    if "pos_embed" not in sd and not args.input_size and "image_size" in extra.get("args", {}):
        args.input_size = int(extra["args"]["image_size"]) // 8
        notes.append(f"input size {args.input_size} from the checkpoint's args.image_size")
    kw = original_config(sd, args)
    if args.model_kwargs:
        kw.update(json.loads(args.model_kwargs))
    if args.model_module:
        mod = _import_user_module(args.model_module)
        name = args.model_class or "DiT"
        if hasattr(mod, name):
            model = getattr(mod, name)(**kw)
        elif name in getattr(mod, "DiT_models", {}):
            # upstream DiT_models["DiT-XL/2"](**kwargs) fixes depth, hidden, patch and heads itself
            fixed = {k: v for k, v in kw.items() if k not in ("depth", "hidden_size", "patch_size", "num_heads")}
            model = mod.DiT_models[name](**fixed)
        else:
            raise TraceError(f"{args.model_module} has no class or DiT_models entry {name!r}")
        desc = f"{getattr(mod, '__name__', args.model_module)}.{name}"
    else:
        dit_original = _import_generate("dit_original")
        model = dit_original.DiT(**kw)
        desc = "ditkit fixtures/generate/dit_original.DiT"
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:       # size mismatches
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip().startswith("size mismatch")]
        raise TraceError(f"the weights do not fit {desc} built with {kw}: " + "; ".join(lines[:3]))
    missing = [k for k in missing if k != "pos_embed"]        # recomputed by the constructor when not stored
    if missing or unexpected:
        raise TraceError(f"the weights do not fit {desc}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    cfg = dict(hidden=kw["hidden_size"], depth=kw["depth"], heads=kw["num_heads"], patch=kw["patch_size"],
               input_size=kw["input_size"], in_channels=kw["in_channels"],
               out_channels=kw["in_channels"] * (2 if kw["learn_sigma"] else 1), num_classes=kw["num_classes"])
    return Loaded("original", model, cfg, desc, notes)


def load_cerebras(sd: dict, args, notes: list) -> Loaded:
    ref = _import_generate("cerebras_reference")
    sd = ref.strip_prefix(sd)
    d = sd["patch_embedding_layer.linear_proj.weight"].shape[0]
    overrides = {"num_heads": _heads(d, args.heads)}
    model = ref.from_state_dict(sd, **overrides)
    cfg = ref.infer_config(sd)
    cfg.update(overrides)
    out = dict(hidden=cfg["hidden_size"], depth=cfg["depth"], heads=cfg["num_heads"], patch=cfg["patch_size"],
               input_size=cfg["input_size"], in_channels=cfg["in_channels"], out_channels=cfg["in_channels"],
               num_classes=cfg["num_classes"])
    return Loaded("cerebras", model, out, "ditkit fixtures/generate/cerebras_reference.CerebrasDiT", notes)


def load_diffusers(folder: Path, notes: list) -> Loaded:
    import diffusers
    from diffusers import DiTTransformer2DModel

    if (folder / "model_index.json").exists():
        folder = folder / "transformer"
        notes.append("transformer component of a pipeline folder")
    cfg_path = folder / "config.json"
    if not cfg_path.exists():
        raise TraceError(f"{folder} has no config.json: not a diffusers component folder")
    config = json.loads(cfg_path.read_text())
    cls_name = config.get("_class_name", "DiTTransformer2DModel")
    if cls_name == "Transformer2DModel":
        model = diffusers.Transformer2DModel.from_pretrained(folder, torch_dtype=torch.float32)
        notes.append("legacy Transformer2DModel config")
    else:
        model = DiTTransformer2DModel.from_pretrained(folder, torch_dtype=torch.float32)
    if not hasattr(model, "proj_out_2") or not hasattr(model, "transformer_blocks"):
        raise TraceError(f"{folder}: {type(model).__name__} is not a DiT (no proj_out_2)")
    c = model.config
    d = c.num_attention_heads * c.attention_head_dim
    out = dict(hidden=d, depth=c.num_layers, heads=c.num_attention_heads, patch=c.patch_size,
               input_size=c.sample_size, in_channels=c.in_channels,
               out_channels=c.out_channels or c.in_channels, num_classes=c.num_embeds_ada_norm)
    # the embedder copies: each block uses its own; the final layer uses block 0's
    blocks = model.transformer_blocks
    drift = []
    for i in range(1, len(blocks)):
        a, b = blocks[0].norm1.emb.state_dict(), blocks[i].norm1.emb.state_dict()
        if any(not torch.equal(a[k], b[k]) for k in a):
            drift.append(i)
    if drift:
        notes.append(f"embedder copies of blocks {drift} differ from block 0's: each block uses its own copy, "
                     f"the trace's t_embed/y_embed/cond are block 0's")
    return Loaded("diffusers", model, out, f"diffusers {diffusers.__version__} {type(model).__name__}", notes)


def load_model(path, kind: Optional[str] = None, args=None) -> Loaded:
    """MODEL path -> the module to trace, in float32 eval mode."""
    args = args or parse_args(["-", "-o", "-"])
    path = Path(path)
    notes: list = []
    if not path.exists():
        raise TraceError(f"{path}: no such file or folder")
    if path.is_dir():
        if kind and kind != "diffusers":
            raise TraceError(f"--kind {kind}: {path} is a folder (diffusers)")
        loaded = load_diffusers(path, notes)
    else:
        obj = _load_file(path, args.trust_pickle)
        sd, extra = _select_state_dict(obj, args.state, notes)
        sd = _strip(sd)
        layout = _detect_layout(sd)
        if kind and kind != layout:
            raise TraceError(f"--kind {kind}, but the weights have the {layout} layout")
        if layout == "original":
            loaded = load_original(sd, args, extra, notes)
        elif layout == "cerebras":
            loaded = load_cerebras(sd, args, notes)
        else:
            raise TraceError("a diffusers state dict in one file: pass the component folder (with config.json)")
    loaded.model.float().eval()
    return loaded


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

def _int_list(text: Optional[str], null: int, what: str):
    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if part in ("null", "K"):
            out.append(null)
        else:
            try:
                out.append(int(part))
            except ValueError:
                raise TraceError(f"--{what}: {part!r} is not an integer")
    if not out:
        raise TraceError(f"--{what}: empty list")
    return out


def make_inputs(cfg: dict, batch: int, seed: int, timesteps=None, classes=None) -> dict:
    """Deterministic inputs: x ~ N(0,1) from torch.Generator().manual_seed(seed); t and y cycle over the lists."""
    if batch < 1:
        raise TraceError("--batch must be at least 1")
    k = cfg["num_classes"]
    timesteps = list(timesteps or DEFAULT_TIMESTEPS)
    classes = list(classes or (0, k, 1, 2))
    for t in timesteps:
        if not 0 <= t <= 999:
            raise TraceError(f"timestep {t} outside 0..999")
    for y in classes:
        if not 0 <= y <= k:
            raise TraceError(f"class {y} outside 0..{k} ({k} = null class)")
    g = torch.Generator().manual_seed(seed)
    s, c = cfg["input_size"], cfg["in_channels"]
    x = torch.randn((batch, c, s, s), generator=g, dtype=torch.float32)
    t = torch.tensor([timesteps[i % len(timesteps)] for i in range(batch)], dtype=torch.float32)
    y = torch.tensor([classes[i % len(classes)] for i in range(batch)], dtype=torch.float32)
    return {"input.x": x, "input.t": t, "input.y": y}


def read_inputs(path, cfg: dict) -> dict:
    import safetensors.torch as st

    tensors = st.load_file(str(path))
    missing = [n for n in INPUT_NAMES if n not in tensors]
    if missing:
        raise TraceError(f"--inputs {path}: no {', '.join(missing)}")
    x, t, y = (tensors[n].to(torch.float32) for n in INPUT_NAMES)
    s, c = cfg["input_size"], cfg["in_channels"]
    n = x.shape[0]
    if x.dim() != 4 or x.shape[1] != c or x.shape[2] != x.shape[3] or x.shape[2] != s:
        raise TraceError(f"--inputs {path}: input.x {tuple(x.shape)} does not fit the model (N,{c},{s},{s})")
    if t.shape != (n,) or y.shape != (n,):
        raise TraceError(f"--inputs {path}: input.t {tuple(t.shape)} / input.y {tuple(y.shape)} are not ({n},)")
    if not torch.equal(y, y.round()) or y.min() < 0 or y.max() > cfg["num_classes"]:
        raise TraceError(f"--inputs {path}: input.y must hold class ids 0..{cfg['num_classes']}")
    return {"input.x": x.contiguous(), "input.t": t.contiguous(), "input.y": y.contiguous()}


# --------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------

class Recorder:
    """Keeps the first value a hook sees under each name; checks that later calls repeat it."""

    def __init__(self):
        self.values = collections.OrderedDict()
        self.calls = collections.Counter()
        self.mismatches = []
        self.handles = []

    def put(self, name: str, value: torch.Tensor):
        value = value.detach().to(torch.float32).contiguous().clone()
        self.calls[name] += 1
        if name not in self.values:
            self.values[name] = value
        elif not torch.equal(self.values[name], value):
            self.mismatches.append(name)

    def output(self, module, name, transform=None):
        def hook(_mod, _inp, out):
            self.put(name, transform(out) if transform else out)
        self.handles.append(module.register_forward_hook(hook))

    def inputs(self, module, names):
        """Records positional (or keyword) inputs of a module: names[i] for the i-th argument (None: skip)."""
        def hook(_mod, args, kwargs):
            for i, n in enumerate(names):
                if n is None:
                    continue
                v = args[i] if i < len(args) else None
                if v is None:
                    raise TraceError(f"pre-forward hook for {n}: argument {i} not passed positionally")
                self.put(n, v)
        self.handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def linear_head_layout(out: torch.Tensor, p: int) -> torch.Tensor:
    """(N, C, S, S) -> (N, T, p·p·C): token row·w + col, column (pi·p + qi)·C + c, the original linear head's."""
    n, c, s, _ = out.shape
    g = s // p
    return out.reshape(n, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1).reshape(n, g * g, p * p * c)


def install_hooks(loaded: Loaded, rec: Recorder):
    m = loaded.model
    if loaded.kind == "original":
        rec.output(m.t_embedder, "t_embed")
        rec.output(m.y_embedder, "y_embed")
        if len(m.blocks):
            rec.inputs(m.blocks[0], ["patch_embed", "cond"])     # x_embedder(x) + pos_embed, c = t + y
        for i, b in enumerate(m.blocks):
            rec.output(b, f"blocks.{i}")
        rec.output(m.final_layer, "final")
    elif loaded.kind == "diffusers":
        emb = m.transformer_blocks[0].norm1.emb
        rec.output(emb.timestep_embedder, "t_embed")
        rec.output(emb.class_embedder, "y_embed")
        rec.output(emb, "cond")
        rec.output(m.pos_embed, "patch_embed")
        for i, b in enumerate(m.transformer_blocks):
            rec.output(b, f"blocks.{i}")
        rec.output(m.proj_out_2, "final")
    elif loaded.kind == "cerebras":
        p = loaded.config["patch"]
        rec.output(m.patch_embedding_layer, "patch_embed")
        rec.output(m.timestep_embedding_layer, "t_embed")
        rec.output(m.label_embedding_layer, "y_embed")
        layers = m.transformer_decoder.layers
        if len(layers):
            rec.inputs(layers[0], [None, "cond"])
        for i, b in enumerate(layers):
            rec.output(b, f"blocks.{i}")
        rec.output(m.noise_head, "final", transform=lambda out: linear_head_layout(out, p))


def run_model(loaded: Loaded, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m = loaded.model
    y_long = y.round().to(torch.int64)
    if loaded.kind == "diffusers":
        return m(x, timestep=t, class_labels=y_long).sample
    if loaded.kind == "cerebras":
        if not torch.equal(t, t.round()):
            raise TraceError("the Cerebras DiT takes integer timesteps")
        return m(x, t.round().to(torch.int64), y_long)
    return m(x, t, y_long)


LAYER_ORDER = ("t_embed", "y_embed", "cond", "patch_embed")


def trace(loaded: Loaded, inputs: dict, layers: str = "all", calls: Optional[dict] = None) -> collections.OrderedDict:
    """Runs the model once on `inputs` with hooks; returns the trace tensors in the contract's order.
    `calls`, if given, receives how often each recorded name was produced (diffusers runs block 0's norm1.emb
    twice: once in block 0, once for the final layer)."""
    torch.manual_seed(0)
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
    except Exception:
        pass
    rec = Recorder()
    if layers == "all":
        install_hooks(loaded, rec)
    try:
        with torch.no_grad():
            out = run_model(loaded, inputs["input.x"], inputs["input.t"], inputs["input.y"])
    finally:
        rec.remove()
    if rec.mismatches:
        print(f"torch-trace: warning: repeated calls gave different values for {sorted(set(rec.mismatches))}",
              file=sys.stderr)
    result = collections.OrderedDict((n, inputs[n].to(torch.float32).contiguous()) for n in INPUT_NAMES)
    if layers == "all":
        for n in LAYER_ORDER:
            if n in rec.values:
                result[n] = rec.values[n]
        depth = loaded.config["depth"]
        for i in range(depth):
            result[f"blocks.{i}"] = rec.values[f"blocks.{i}"]
        result["final"] = rec.values["final"]
    result["output"] = out.detach().to(torch.float32).contiguous()
    check_shapes(result, loaded.config)
    if calls is not None:
        calls.update(rec.calls)
    return result


def check_shapes(tr: dict, cfg: dict):
    n = tr["input.x"].shape[0]
    s = tr["input.x"].shape[-1]
    d, p, c, cout = cfg["hidden"], cfg["patch"], cfg["in_channels"], cfg["out_channels"]
    t = (s // p) ** 2
    want = {"input.x": (n, c, s, s), "input.t": (n,), "input.y": (n,), "t_embed": (n, d), "y_embed": (n, d),
            "cond": (n, d), "patch_embed": (n, t, d), "final": (n, t, p * p * cout), "output": (n, cout, s, s)}
    want.update({f"blocks.{i}": (n, t, d) for i in range(cfg["depth"])})
    for name, v in tr.items():
        if tuple(v.shape) != want[name]:
            raise TraceError(f"internal: {name} has shape {tuple(v.shape)}, expected {want[name]}")
        if v.dtype != torch.float32:
            raise TraceError(f"internal: {name} is {v.dtype}")


def save_trace(path, tensors: dict, semantics: str, source: str, model: dict | None = None):
    """safetensors, float32, the contract's metadata; written to a temporary file and renamed.

    Written here rather than with safetensors.torch.save_file so that the bytes are reproducible: the header keeps
    the trace's order (inputs, embeddings, blocks, final, output; data in the same order) and the metadata keys in
    a fixed order (the safetensors library writes its metadata from a hash map, in a different order every run).
    The header is padded with spaces to a multiple of 8, as the library does."""
    if semantics not in KINDS:
        raise TraceError(f"unknown semantics {semantics}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"__metadata__": {"format": "pt", "ditkit.trace": TRACE_VERSION, "ditkit.trace.semantics": semantics,
                               "ditkit.trace.source": source}}
    if model is not None:
        # The sizes the PyTorch model was built with, in ditkit's config names (heads cannot be read from weights:
        # `ditkit verify --against` uses this one).
        header["__metadata__"]["ditkit.trace.model"] = json.dumps(model, separators=(",", ":"), sort_keys=True)
    blobs, offset = [], 0
    for name, v in tensors.items():
        if v.dtype != torch.float32:
            raise TraceError(f"internal: {name} is {v.dtype}, traces are float32")
        data = v.detach().cpu().contiguous().numpy().astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def source_text(loaded: Loaded, model_path, inputs_desc: str) -> str:
    versions = f"torch {torch.__version__}"
    if loaded.kind == "diffusers":
        import diffusers
        versions += f", diffusers {diffusers.__version__}"
    return (f"scripts/torch-trace.py ({versions}, python {platform.python_version()}): {loaded.description} "
            f"on {Path(model_path).name}; {inputs_desc}" + "".join(f"; {n}" for n in loaded.notes))


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(prog="torch-trace.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="original/Cerebras .pt or .safetensors, or a diffusers folder")
    ap.add_argument("-o", "--output", required=True, help="trace file to write (.safetensors)")
    ap.add_argument("--kind", choices=KINDS, help="expected layout (detected from the weights if omitted)")
    ap.add_argument("--seed", type=int, default=0, help="seed of input.x (default 0)")
    ap.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    ap.add_argument("--timesteps", help="comma list cycled over the batch (default 0,999,500,250)")
    ap.add_argument("--classes", help="comma list cycled over the batch; `null` = K (default 0,null,1,2)")
    ap.add_argument("--layers", choices=("all", "io"), default="all", help="all layers, or inputs + output only")
    ap.add_argument("--inputs", help="reuse input.x/t/y of this trace")
    ap.add_argument("--model-module", help="original DiT: a .py file or module name holding the model class")
    ap.add_argument("--model-class", help="class name (default DiT) or a DiT_models entry such as DiT-XL/2")
    ap.add_argument("--model-kwargs", help="JSON object of constructor arguments overriding the inferred ones")
    ap.add_argument("--state", choices=("ema", "model"), help="train.py checkpoint: which weights (default ema)")
    ap.add_argument("--heads", type=int, help="attention heads (not stored in original/Cerebras weights)")
    ap.add_argument("--num-classes", type=int, help="K, when the label table has no null row")
    ap.add_argument("--input-size", type=int, help="latent size S, when pos_embed is not stored")
    ap.add_argument("--trust-pickle", action="store_true", help="torch.load with weights_only=False")
    ap.add_argument("-q", "--quiet", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> dict:
    """Runs the command line; returns {"path", "kind", "config", "layers", "batch", "trace", "calls"}."""
    args = parse_args(argv)
    loaded = load_model(args.model, args.kind, args)
    cfg = loaded.config
    if args.inputs:
        inputs = read_inputs(args.inputs, cfg)
        desc = f"inputs from {Path(args.inputs).name}"
    else:
        ts = _int_list(args.timesteps, cfg["num_classes"], "timesteps")
        cs = _int_list(args.classes, cfg["num_classes"], "classes")
        inputs = make_inputs(cfg, args.batch, args.seed, ts, cs)
        desc = f"x ~ N(0,1) seed {args.seed}"
    desc += (f", t {[int(v) for v in inputs['input.t'].tolist()]}, y {[int(v) for v in inputs['input.y'].tolist()]}"
             f", layers {args.layers}")
    calls: dict = {}
    tr = trace(loaded, inputs, args.layers, calls)
    model = {"hidden_size": cfg["hidden"], "depth": cfg["depth"], "num_heads": cfg["heads"], "patch_size": cfg["patch"],
             "input_size": cfg["input_size"], "in_channels": cfg["in_channels"], "out_channels": cfg["out_channels"],
             "num_classes": cfg["num_classes"]}
    save_trace(args.output, tr, loaded.kind, source_text(loaded, args.model, desc), model)
    if not args.quiet:
        print(f"torch-trace: {args.output}: {loaded.kind}, {len(tr)} tensors "
              f"(batch {tr['input.x'].shape[0]}, D {cfg['hidden']}, depth {cfg['depth']}, p {cfg['patch']}, "
              f"S {tr['input.x'].shape[-1]})", file=sys.stderr)
        for n in loaded.notes:
            print(f"  note: {n}", file=sys.stderr)
    return {"path": str(args.output), "kind": loaded.kind, "config": cfg, "layers": list(tr),
            "batch": int(tr["input.x"].shape[0]), "trace": tr, "calls": calls,
            "notes": list(loaded.notes)}


if __name__ == "__main__":
    try:
        main()
    except TraceError as e:
        print(f"torch-trace: error: {e}", file=sys.stderr)
        sys.exit(2)
