#!/usr/bin/env python3
"""How far the reference's bfloat16 LM agrees with itself across CPU instruction sets: the bf16 fixtures of
make_lm_fixtures.py (STT-like and TTS-like, 30 greedy steps) recomputed by the reference on this machine with
ATen's kernels at each instruction-set level it has (ATEN_CPU_CAPABILITY), each compared with the stored
golden files (made on an AVX-512 machine) by the C++ tests' measure: max |a - b| / max |b| per step, the
largest over the steps. bf16 keeps 8 significant bits, and ATen's bf16 matrix products round and sum
differently per instruction set, so the reference itself moves by about a bf16 step between CPUs; this is
what bounds the tolerance of LmGenTest.*Bf16MatchesReference (docs/lm.md).

    ~/.cache/monologue/venv/bin/python tests/reference/measure_lm_bf16_self_agreement.py
"""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(out_path: str):
    sys.path.insert(0, str(HERE))
    import torch
    from safetensors.torch import load_file, save_file

    import make_lm_fixtures as fx

    captured = {}

    def capture(family, name, tensors, meta=None):
        captured[f"{family}/{name}"] = {k: v.contiguous() for k, v in tensors.items()}

    fx.save_golden = capture
    torch.set_num_threads(1)  # as make_lm_fixtures.py
    fx.make_bf16()
    flat = {f"{key}/{k}": v for key, t in captured.items() for k, v in t.items()}
    save_file(flat, out_path)
    del load_file


def rel_error(a, b):
    scale = float(b.abs().max())
    return float((a.float() - b.float()).abs().max()) / (scale if scale > 0 else 1.0)


def compare(out_path: str):
    import torch
    from safetensors.torch import load_file

    ours = load_file(out_path)
    result = {}
    for key in ("stt/bf16_greedy", "tts/bf16_greedy"):
        family, name = key.split("/")
        golden = load_file(str(HERE.parent / "data" / "lm" / family / f"{name}.safetensors"))
        for what in ("text_logits", "extra_heads", "audio_logits"):
            if what not in golden:
                continue
            a, b = ours[f"{key}/{what}"], golden[what]
            per_step = [rel_error(a[s], b[s]) for s in range(a.shape[0]) if not torch.isnan(b[s]).any()]
            result[f"{family} {what}"] = max(per_step) if per_step else float("nan")
        result[f"{family} tokens equal"] = bool(torch.equal(ours[f"{key}/tokens"], golden["tokens"]))
    return result


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return
    import torch

    levels = ["default", "avx2", "avx512"]
    for level in levels:
        out = f"/tmp/bf16_self_agreement_{level}.safetensors"
        env = dict(os.environ, ATEN_CPU_CAPABILITY=level)
        run = subprocess.run([sys.executable, __file__, "--child", out], env=env, capture_output=True, text=True)
        probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                               env=env, capture_output=True, text=True).stdout.strip()
        if run.returncode != 0:
            tail = (run.stderr.strip().splitlines() or ["(no message: this CPU lacks the instruction set?)"])[-1]
            print(f"ATEN_CPU_CAPABILITY={level}: the reference did not run: {tail}")
            continue
        print(f"ATEN_CPU_CAPABILITY={level} (ATen runs {probe}), against the golden files: "
              + json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in compare(out).items()}))
    del torch


if __name__ == "__main__":
    main()
