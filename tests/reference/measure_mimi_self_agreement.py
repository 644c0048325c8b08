#!/usr/bin/env python3
"""How far the reference Mimi agrees with itself: the same model and input, encoded with 1 and with 2 threads
(and streaming vs offline), compared level by level. Deep RVQ levels pick the nearest of 2048 centroids after 31
residual subtractions, so a float-rounding difference can flip one; this measures how often it does in the
reference itself, which bounds what any reimplementation can be asked to match (docs/mimi.md).

    ~/.cache/monologue/venv/bin/python tests/reference/measure_mimi_self_agreement.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_mimi_fixtures as fx  # noqa: E402  (the released architecture with deterministic weights)
from moshi.models import loaders  # noqa: E402


def encode(model, pcm, threads, streaming):
    torch.set_num_threads(threads)
    with torch.no_grad():
        if not streaming:
            model.set_num_codebooks(32)
            return model.encode(pcm)
        return fx.stream_encode(model, pcm, 32)


def main():
    model, _ = fx.build(loaders._mimi_config)
    clips = [fx.fit(fx.speech(t, v), 136).view(1, 1, -1) for t, v in (
        ("The quick brown fox jumps over the lazy dog while the band plays on.", "en-us"),
        ("Le petit chat dort au soleil pendant que la pluie tombe sur le toit.", "fr"))]
    for streaming in (False, True):
        diffs = torch.zeros(32, dtype=torch.long)
        total = 0
        for pcm in clips:
            a = encode(model, pcm, 1, streaming)
            b = encode(model, pcm, 2, streaming)
            diffs += (a != b)[0].sum(-1)
            total += a.shape[-1]
        mode = "streaming" if streaming else "offline"
        per_level = ", ".join(f"{int(d)}" for d in diffs)
        print(f"{mode}: {total} frames x 32 levels; positions differing between 1 and 2 threads per level: "
              f"[{per_level}]; first level with a difference: "
              f"{next((i for i, d in enumerate(diffs) if d > 0), None)}; "
              f"overall {100.0 * float(diffs.sum()) / (total * 32):.3f}%")


if __name__ == "__main__":
    main()
