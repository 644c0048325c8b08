"""The reference counterpart of `monologue bench transcribe`: per-step time of the reference transcription
loop (moshi.run_inference for model_type "stt": `mimi.encode` of one 1920-sample frame per stream, then
`LMGen.step` (step_with_extra_heads when the model has extra heads), greedy as the config's lm_gen_config
says, the text token read back on the host), for each batch size, on random weights of the architecture in a
config.json (Mimi: the released architecture, random weights).

    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python bench/bench_transcribe_reference.py \
        --config CONFIG.json [--mimi-config MIMI.json] [--batch 1,8] [--steps 20] [--warmup 3] [--threads 2] [--dtype f32|bf16]

`monologue bench transcribe --reference` writes the config and runs this script right after its own
measurements (same machine, same run).
"""
import argparse
import json
import os
import time

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import torch  # noqa: E402

from moshi.models import loaders  # noqa: E402
from moshi.models.lm import LMGen  # noqa: E402

NON_ARCH = ["moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name", "lora_name", "model_type",
            "lm_gen_config", "tts_config", "stt_config", "model_id", "lora", "lora_rank", "lora_scaling"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--mimi-config", help="Mimi architecture JSON (loaders._mimi_config structure); default: released")
    p.add_argument("--batch", default="1,8")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="f32")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    with open(args.config) as f:
        raw = json.load(f)
    gen_config = raw.get("lm_gen_config", {})
    cfg = {k: v for k, v in raw.items() if k not in NON_ARCH}
    torch.manual_seed(0)
    dev = args.device
    lm = loaders.get_moshi_lm(None, lm_kwargs=cfg, device=dev, dtype=dtype)
    lm.eval()
    n_codebooks = max(lm.dep_q, lm.n_q - lm.dep_q)
    mimi_config = None
    if args.mimi_config:
        with open(args.mimi_config) as f:
            mimi_config = json.load(f)
    mimi = loaders.get_mimi(None, mimi_config, device=dev, num_codebooks=n_codebooks)
    mimi.eval()
    with_heads = len(lm.extra_heads) > 0
    print(f"reference transcription loop: {args.config} (random weights), device {dev}, {args.dtype}, "
          f"{args.threads} threads, {args.steps} steps (+{args.warmup} warm-up), extra heads: {with_heads}")
    print(f"{'batch':>6}  {'step ms':>10}  {'RTF':>8}  {'x realtime (all streams)':>26}")

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    gen = torch.Generator().manual_seed(1)
    for b in [int(x) for x in args.batch.split(",")]:
        lm_gen = LMGen(lm, **gen_config)
        frames = (0.1 * torch.randn(args.warmup + args.steps + 1, b, 1, 1920, generator=gen)).to(dev)
        with torch.no_grad(), mimi.streaming(b), lm_gen.streaming(b):

            def step(i):
                codes = mimi.encode(frames[i])
                if with_heads:
                    out = lm_gen.step_with_extra_heads(codes)
                    tokens = out[0] if out is not None else None
                else:
                    tokens = lm_gen.step(codes)
                if tokens is not None:
                    tokens[:, 0].cpu()

            step(0)  # the first frame's double feed (run_inference)
            for i in range(args.warmup):
                step(i)
            sync()
            t0 = time.perf_counter()
            for i in range(args.steps):
                step(args.warmup + i)
            sync()
            step_ms = (time.perf_counter() - t0) * 1000 / args.steps
        print(f"{b:>6}  {step_ms:>10.2f}  {step_ms / 80:>8.3f}  {b * 80 / step_ms:>26.2f}", flush=True)


if __name__ == "__main__":
    main()
