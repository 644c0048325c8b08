"""Checkpoints in the reference's own state_dict naming, for the C++ key-layout parity tests.

Run with the project's venv:
    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python tests/reference/make_layout_fixtures.py

The released checkpoints name attention weights `self_attn.in_proj_weight` / `self_attn.out_proj.weight`
(one tensor over all depformer weight sets); the current reference package's modules hold one Linear per
weight set, so `model.state_dict()` saves `self_attn.in_projs.{i}.weight` / `self_attn.out_projs.{i}.weight`,
and a LoRA-wrapped model `...in_projs.{i}.lora_A.weight` / `lora_B`. The reference loader accepts both (its
load_state_dict pre-hook splits the fused tensors). This script loads the existing tiny fixture models
through the reference loaders (released naming in) and saves the reference model's own state_dict() (new
naming out), then checks in Python that the re-saved files load back to identical parameters (and, for
Mimi, identical codes):

  tests/data/layouts/mimi_state_dict.safetensors        tests/data/mimi/tiny_mimi.safetensors re-saved
  tests/data/layouts/stt_state_dict.safetensors         tests/data/lm/stt/model.safetensors re-saved
  tests/data/layouts/moshi_state_dict.safetensors       tests/data/lm/moshi/model.safetensors re-saved
                                                        (depformer with 8 per-step weight sets)
  tests/data/layouts/moshi_lora_state_dict.safetensors  the lora_A/lora_B tensors of the Moshi-like model
                                                        wrapped with LoRA (rank 4) and loaded with
                                                        tests/data/lm/moshi/lora.safetensors

The C++ tests (tests/lm/lm_layout_test.cc, tests/mimi/mimi_layout_test.cc) run the existing reference
goldens (greedy tokens, Mimi codes) on these files and expect exactly what the released naming gives.
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from moshi.models import loaders  # noqa: E402
from moshi.modules.lora import replace_all_linear_with_lora  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
OUT = DATA / "layouts"


def lm_kwargs(family: str) -> dict:
    config = json.loads((DATA / "lm" / family / "config.json").read_text())
    config.pop("model_type", None)
    return config


def load_lm(family: str, path: Path):
    model = loaders.get_moshi_lm(str(path), lm_kwargs=lm_kwargs(family), device="cpu", dtype=torch.float32)
    model.eval()
    return model


def state(model) -> dict:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def same_parameters(a, b, what: str):
    """The reference loads both namings into identical modules: every parameter and buffer equal."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), what
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{what}: {k} differs"


def make_lm(family: str):
    released = load_lm(family, DATA / "lm" / family / "model.safetensors")
    sd = state(released)
    assert any(".in_projs.0.weight" in k for k in sd), "expected the per-step naming in state_dict()"
    path = OUT / f"{family}_state_dict.safetensors"
    save_file(sd, str(path))
    reloaded = load_lm(family, path)
    same_parameters(released, reloaded, family)
    return path


def make_lora():
    model = load_lm("moshi", DATA / "lm" / "moshi" / "model.safetensors")
    replace_all_linear_with_lora(model, 4, 2.0, device="cpu")
    res = model.load_state_dict(load_file(str(DATA / "lm" / "moshi" / "lora.safetensors")), strict=False)
    assert not res.unexpected_keys, res.unexpected_keys
    lora = {k: v for k, v in state(model).items() if ".lora_A." in k or ".lora_B." in k}
    assert any(".in_projs.1.lora_A.weight" in k for k in lora)
    path = OUT / "moshi_lora_state_dict.safetensors"
    save_file(lora, str(path))
    return path


def make_mimi():
    config = json.loads((DATA / "mimi" / "tiny_mimi_config.json").read_text())
    released = loaders.get_mimi(str(DATA / "mimi" / "tiny_mimi.safetensors"), config, device="cpu",
                                num_codebooks=32)
    released.eval()
    sd = state(released)
    assert any(".in_projs.0.weight" in k for k in sd)
    path = OUT / "mimi_state_dict.safetensors"
    save_file(sd, str(path))
    reloaded = loaders.get_mimi(str(path), config, device="cpu", num_codebooks=32)
    reloaded.eval()
    same_parameters(released, reloaded, "mimi")
    torch.manual_seed(1)
    pcm = torch.randn(1, 1, 1920 * 6) * 0.1
    with torch.no_grad():
        assert torch.equal(released.encode(pcm), reloaded.encode(pcm)), "mimi: codes differ"
    return path


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for p in (make_mimi(), make_lm("stt"), make_lm("moshi"), make_lora()):
        keys = load_file(str(p)).keys()
        per_step = sorted(k for k in keys if "projs." in k)[:2]
        print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes, {len(keys)} tensors, e.g. {per_step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
