"""The reference counterpart of `monologue bench chat`: per-step time of the reference's full-duplex loop
(moshi.run_inference.InferenceState.run for a Moshi model: `mimi.encode` of one 1920-sample user frame per
conversation, `LMGen.step`, `mimi.decode` of Moshi's codebooks, the text tokens and PCM read back on the
host), for each batch size, on random weights of the architecture in a config.json (Mimi: the architecture of
--mimi-config, random weights). Sampling: the LMGen defaults (temp 0.8 / 0.7) with top-k capped at the card
(torch.topk refuses k > card on tiny models), as `monologue bench chat` does.

    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python bench/bench_chat_reference.py \
        --config CONFIG.json [--mimi-config MIMI.json] [--batch 1,8] [--steps 20] [--warmup 10] [--threads 2] \
        [--dtype f32|bf16] [--device cpu|cuda]

`monologue bench chat --reference` writes the config and runs this script right after its own measurements
(same machine, same run). On CUDA, the reference's own CUDA graphs can be enabled by leaving NO_CUDA_GRAPH
unset in the environment (the default sets it to 1).
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
    p.add_argument("--mimi-config", help="Mimi architecture JSON; default: the released one")
    p.add_argument("--batch", default="1,8")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="f32")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    with open(args.config) as f:
        raw = json.load(f)
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
    gen_kwargs = dict(raw.get("lm_gen_config", {}))
    gen_kwargs["top_k"] = min(gen_kwargs.get("top_k", 250), lm.card)
    gen_kwargs["top_k_text"] = min(gen_kwargs.get("top_k_text", 25), lm.text_card)
    print(f"reference full-duplex loop (run_inference): {args.config} (random weights), device {dev}, {args.dtype}, "
          f"{args.threads} threads, {args.steps} steps (+{args.warmup} warm-up)")
    print(f"{'batch':>6}  {'step ms':>10}  {'encode':>9}  {'lm':>9}  {'decode':>9}  {'RTF':>8}  {'x realtime':>12}")

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    gen = torch.Generator().manual_seed(1)
    for b in [int(x) for x in args.batch.split(",")]:
        lm_gen = LMGen(lm, **gen_kwargs)
        frames = (0.1 * torch.randn(args.warmup + args.steps + 1, b, 1, 1920, generator=gen)).to(dev)
        parts = [0.0, 0.0, 0.0]
        with torch.no_grad(), mimi.streaming(b), lm_gen.streaming(b):

            def step(i, first=False):
                t0 = time.perf_counter()
                codes = mimi.encode(frames[i])
                sync()
                t1 = time.perf_counter()
                if first:
                    lm_gen.step(codes)  # the first frame's double feed (run_inference)
                tokens = lm_gen.step(codes)
                sync()
                t2 = time.perf_counter()
                if tokens is not None:
                    tokens[:, 0].cpu()
                    mimi.decode(tokens[:, 1:]).cpu()
                sync()
                t3 = time.perf_counter()
                return t1 - t0, t2 - t1, t3 - t2

            step(0, first=True)
            for i in range(args.warmup):
                step(1 + i)
            sync()
            t0 = time.perf_counter()
            for i in range(args.steps):
                for k, dt in enumerate(step(1 + args.warmup + i)):
                    parts[k] += dt
            step_ms = (time.perf_counter() - t0) * 1000 / args.steps
        enc, lmt, dec = (1000 * x / args.steps for x in parts)
        print(f"{b:>6}  {step_ms:>10.2f}  {enc:>9.2f}  {lmt:>9.2f}  {dec:>9.2f}  {step_ms / 80:>8.3f}  "
              f"{b * 80 / step_ms:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
