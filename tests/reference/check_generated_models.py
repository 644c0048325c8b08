"""Proves that directories written by `monologue-make-model` are in the released format: loads each with
the reference package's own loaders (CheckpointInfo.from_hf_repo with a local config + get_moshi_lm strict
`load_state_dict(assign=True)` + get_mimi strict load), checks the weights are the deterministic ones the
generator promises (tests/reference/detinit.py, per-tensor rule from the C++ schema) for a sample of
tensors, and for small models runs one forward pass (Mimi encode/decode, LM forward) to check the
activations are finite.

Usage: ~/.cache/monologue/venv/bin/python tests/reference/check_generated_models.py DIR [DIR...]
       [--seed N] [--no-forward]
"""
import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import torch
from moshi.models import loaders
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detinit import deterministic_tensor  # noqa: E402


def checkpoint_info(d: Path) -> loaders.CheckpointInfo:
    cfg = d / "config.json"
    if cfg.exists():
        raw = json.loads(cfg.read_text())
        moshi = d / raw.get("moshi_name", loaders.MOSHI_NAME)
        mimi = d / raw.get("mimi_name", loaders.MIMI_NAME)
        tok = d / raw.get("tokenizer_name", loaders.TEXT_TOKENIZER_NAME)
        mimi_cfg = d / raw["mimi_config_name"] if raw.get("mimi_config_name") else None
        lora = d / raw["lora_name"] if raw.get("lora_name") else None
        # hf_repo is unused: every file is given explicitly (no network).
        return loaders.CheckpointInfo.from_hf_repo(
            "local/unused", moshi_weights=moshi, mimi_weights=mimi, tokenizer=tok, config_path=cfg,
            mimi_config_path=mimi_cfg, lora_weights=lora)
    # Legacy: no config.json -> the reference falls back to the Moshi 7B defaults.
    return loaders.CheckpointInfo(d / loaders.MOSHI_NAME, d / loaders.MIMI_NAME, d / loaders.TEXT_TOKENIZER_NAME)


def check_values(path: Path, seed: int, count: int = 6):
    """A few tensors must equal the deterministic rule: spot-check by name patterns."""
    checked = 0
    with safe_open(str(path), "pt") as f:
        for key in f.keys():
            t = f.get_tensor(key)
            if key.endswith((".alpha", "norm1.weight", "norm2.weight", "_initialized")):
                assert torch.all(t.float() == 1), key
            elif key.endswith((".bias",)) and "norm" not in key:
                assert torch.all(t.float() == 0), key
            elif (key.endswith("embedding_sum") or key.startswith("emb.") or key.startswith("text_emb.weight")
                  or key.endswith("embed.weight")) and checked < count and t.numel() < 50_000_000:
                expected = deterministic_tensor(seed, key, tuple(t.shape), 1.0, 0.0).to(t.dtype)
                assert torch.equal(t, expected), f"{path.name}:{key} differs from the deterministic rule"
                checked += 1
    return checked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-forward", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    ok = True
    for name in args.dirs:
        d = Path(name)
        try:
            info = checkpoint_info(d)
            report = [f"{d}: type={info.model_type}"]
            mimi = info.get_mimi(device="cpu")  # strict load_state_dict
            report.append(f"mimi ok ({sum(p.numel() for p in mimi.state_dict().values())} values, "
                          f"{mimi.num_codebooks} codebooks)")
            report.append(f"mimi spot-checked {check_values(info.mimi_weights, args.seed)}")
            lm_dtype = None
            if info.moshi_weights.exists():
                with safe_open(str(info.moshi_weights), "pt") as f:
                    lm_dtype = f.get_tensor("out_norm.alpha").dtype
                lm = info.get_moshi(device="cpu", dtype=lm_dtype)  # strict load, assign=True
                n = sum(p.numel() for p in lm.parameters())
                report.append(f"lm ok ({n} params, {lm_dtype})")
                report.append(f"lm spot-checked {check_values(info.moshi_weights, args.seed)}")
                if not args.no_forward and n < 50_000_000:
                    with torch.no_grad():
                        wav = torch.randn(1, 1, 1920 * 4) * 0.1
                        codes = mimi.encode(wav)
                        out = mimi.decode(codes)
                        assert torch.isfinite(out).all()
                        K = lm.num_codebooks
                        T = 4
                        tokens = torch.zeros(1, K, T, dtype=torch.long)
                        tokens[:, 1:, :] = codes[:, : K - 1, :T] if codes.shape[1] >= K - 1 else 0
                        cond = None
                        if lm.condition_provider is not None:
                            from moshi.conditioners import ConditionAttributes, TensorCondition
                            attrs = ConditionAttributes(text={"control": "ok", "cfg": "1.0"}, tensor={})
                            for cname, c in lm.condition_provider.conditioners.items():
                                if cname not in attrs.text:
                                    dim = c.output_proj.in_features
                                    attrs.tensor[cname] = TensorCondition(torch.randn(1, 5, dim),
                                                                          torch.ones(1, 5, dtype=torch.bool))
                            prepared = lm.condition_provider.prepare([attrs])
                            cond = lm.condition_provider(prepared)
                        if lm.dep_q > 0:
                            res = lm(tokens, cond)  # training forward: text + depformer logits
                            logits = res.text_logits[res.text_mask[..., None].expand_as(res.text_logits)]
                            assert torch.isfinite(res.logits[res.mask[..., None].expand_as(res.logits)]).all()
                        else:  # no depformer (STT): the temporal transformer + text head only
                            _, logits = lm.forward_text(tokens)
                        assert torch.isfinite(logits).all()
                        std = logits.float().std().item()
                        report.append(f"forward ok (codes {tuple(codes.shape)}, text logits std {std:.3f})")
            print("OK   " + "; ".join(report))
        except Exception as e:  # report and continue with the next directory
            ok = False
            print(f"FAIL {d}: {type(e).__name__}: {e}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
