#!/usr/bin/env python3
"""Writes the Cerebras-xlarge .mdl of scripts/bench-mdl with the REAL saver: `cerebras.pytorch.save` of
{"model": DiTModel.state_dict()} (the Model Zoo trainer's structure; names `model.<per-model key>` from
fixtures/generate/cerebras_reference.py, 1152/28/16, F 4608, patch 2, 4 channels, 1000 classes, 32x32 latents),
random N(0, 0.02^2) f32 weights and the frozen tables as the Model Zoo computes them. cerebras.pytorch.save with no
Cerebras backend writes h5py + hdf5plugin LZ4 datasets (format 0.5), as on a real run's CPU side.

    .venv-cerebras/bin/python scripts/make-bench-mdl.py OUT.mdl
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures" / "generate"))
import cerebras_reference as ref  # noqa: E402
import cerebras.pytorch as cstorch  # noqa: E402


def main() -> int:
    out = sys.argv[1]
    torch.manual_seed(0)
    with torch.no_grad():
        model = ref.CerebrasDiT()          # the xlarge defaults
        for _, p in model.named_parameters():
            p.normal_(0.0, 0.02)
    state = ref.checkpoint(model)
    state.pop("global_step")
    cstorch.save(state, out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
