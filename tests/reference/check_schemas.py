"""Dumps the reference implementation's expected checkpoint inventory (key -> shape, dtype class) for every
config under tests/data/configs/ into tests/data/configs/reference_schemas.json.

The models are built by the reference's own loaders (`loaders.get_moshi_lm` / `loaders.get_mimi`) on the
meta device, so no weights are allocated, even for Moshi 7B. Keys use the released file naming: the
reference's per-weight-set `in_projs.{i}.weight` / `out_projs.{i}.weight` are fused back into
`in_proj_weight` [W*rows, cols] / `out_proj.weight` (what its load hook splits). The C++ test
tests/config/checkpoint_schema_test.cc compares ExpectedLmTensors / ExpectedMimiTensors with this file.

Run: ~/.cache/monologue/venv/bin/python tests/reference/check_schemas.py
"""
import json
import re
from collections import OrderedDict
from pathlib import Path

import torch
from moshi.models import loaders

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "data" / "configs"
NON_ARCH = ["moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name", "lora_name", "model_type",
            "lm_gen_config", "tts_config", "stt_config", "model_id"]


def fused_inventory(module: torch.nn.Module, classify):
    items = OrderedDict()
    fused = OrderedDict()
    pat = re.compile(r"^(.*)\.(in_projs|out_projs)\.(\d+)\.weight$")
    for key, value in module.state_dict(keep_vars=True).items():
        m = pat.match(key)
        if m:
            name = m.group(1) + (".in_proj_weight" if m.group(2) == "in_projs" else ".out_proj.weight")
            fused.setdefault(name, []).append(list(value.shape))
            items.setdefault(name, None)
            continue
        items[key] = {"shape": list(value.shape), "class": classify(key, value)}
    for name, shapes in fused.items():
        rows = sum(s[0] for s in shapes)
        assert all(s[1:] == shapes[0][1:] for s in shapes)
        items[name] = {"shape": [rows] + shapes[0][1:], "class": "weight"}
    return [{"name": k, **v} for k, v in items.items()]


def lm_classify(key, value):
    if key.startswith("condition_provider.") or key.startswith("fuser."):
        return "conditioner"
    return "weight"


def mimi_classify(key, value):
    return "buffer" if "._codebook." in key else "weight"


def lm_inventory(lm_config):
    with torch.device("meta"):
        model = loaders.get_moshi_lm(None, lm_kwargs=lm_config, device="meta", dtype=torch.bfloat16)
    return fused_inventory(model, lm_classify)


def mimi_inventory(mimi_config):
    with torch.device("meta"):
        model = loaders.get_mimi(None, mimi_config, device="meta")
    return fused_inventory(model, mimi_classify)


def main():
    out = OrderedDict()
    for d in sorted(p for p in CONFIGS.iterdir() if p.is_dir()):
        entry = OrderedDict()
        cfg_path = d / "config.json"
        mimi_config = None
        if cfg_path.exists():
            raw = json.loads(cfg_path.read_text())
            # LoRA wraps the Linears only after the base checkpoint is loaded (get_moshi_lm), so the base
            # file's inventory is the plain model's.
            lm_config = {k: v for k, v in raw.items() if k not in NON_ARCH + ["lora", "lora_rank", "lora_scaling"]}
            if raw.get("mimi_config_name"):
                mimi_config = json.loads((d / raw["mimi_config_name"]).read_text())
            entry["lm"] = lm_inventory(lm_config)
        elif (d / "model.safetensors").exists():
            entry["lm"] = lm_inventory(None)  # legacy Moshi 7B defaults
        elif (d / "mimi_config.json").exists():
            mimi_config = json.loads((d / "mimi_config.json").read_text())
        entry["mimi"] = mimi_inventory(mimi_config)
        out[d.name] = entry
        print(d.name, {k: len(v) for k, v in entry.items()},
              {k: sum(eval("*".join(map(str, t["shape"])) or "1") for t in v) for k, v in entry.items()})
    (CONFIGS / "reference_schemas.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
