"""The reference counterpart of `monologue bench lm`: per-step time of the reference LMGen (greedy), of its
temporal part (`forward_text`, as LMGen calls it) and of its depformer (`depformer_step`, all codebooks with
sampling), for each batch size, on random weights of the architecture in a config.json.

    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python bench/bench_lm_reference.py \
        --config CONFIG.json [--batch 1,8] [--steps 50] [--warmup 5] [--threads 2] [--dtype f32|bf16]

A config.json for a preset: `monologue bench lm --preset NAME --write-config CONFIG.json`.
"""
import argparse
import json
import os
import time

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import torch  # noqa: E402

from moshi.conditioners import ConditionAttributes, TensorCondition  # noqa: E402
from moshi.models import loaders  # noqa: E402
from moshi.models.lm import LMGen  # noqa: E402

NON_ARCH = ["moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name", "lora_name", "model_type",
            "lm_gen_config", "tts_config", "stt_config", "model_id"]


def conditions(model, batch):
    if model.fuser is None:
        return None
    attrs = []
    for _ in range(batch):
        text, tensor = {}, {}
        for name, cond in model.condition_provider.conditioners.items():
            if hasattr(cond, "tokenizer"):
                values = cond.tokenizer.possible_values
                text[name] = next(iter(values)) if values else None
            else:
                tensor[name] = TensorCondition(torch.zeros(1, 4, cond.dim), torch.ones(1, 4, dtype=torch.bool))
        attrs.append(ConditionAttributes(text=text, tensor=tensor))
    return model.condition_provider(model.condition_provider.prepare(attrs))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--batch", default="1,8")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="f32")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    with open(args.config) as f:
        cfg = json.load(f)
    for k in NON_ARCH:
        cfg.pop(k, None)
    for k in ("lora", "lora_rank", "lora_scaling"):
        cfg.pop(k, None)
    torch.manual_seed(0)
    model = loaders.get_moshi_lm(None, lm_kwargs=cfg, device=args.device, dtype=dtype)
    model.eval()
    dev = args.device
    print(f"reference LMGen: {args.config} (random weights), device {dev}, {args.dtype}, {args.threads} threads, "
          f"greedy, {args.steps} steps (+{args.warmup} warm-up)")
    print(f"{'batch':>6}  {'step ms':>14}  {'temporal ms':>14}  {'depformer ms':>16}")

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    for b in [int(x) for x in args.batch.split(",")]:
        gen = LMGen(model, use_sampling=False, temp=0.0, temp_text=0.0, condition_tensors=conditions(model, b))
        n_in = model.n_q - model.dep_q
        inputs = torch.randint(0, model.card, (args.warmup + args.steps, b, n_in, 1), device=dev)
        with gen.streaming(b), torch.no_grad():
            for i in range(args.warmup):
                gen.step(inputs[i])
            sync()
            t0 = time.perf_counter()
            for i in range(args.steps):
                gen.step(inputs[args.warmup + i])
            sync()
            step_ms = (time.perf_counter() - t0) * 1000 / args.steps
            state = gen._streaming_state
            tokens = torch.randint(0, model.card, (args.warmup + args.steps, b, model.num_codebooks, 1), device=dev)
            for i in range(args.warmup):
                z, logits = state.graphed_main(tokens[i], state.condition_sum, state.condition_cross)
            sync()
            t0 = time.perf_counter()
            for i in range(args.steps):
                z, logits = state.graphed_main(tokens[args.warmup + i], state.condition_sum, state.condition_cross)
            sync()
            temporal_ms = (time.perf_counter() - t0) * 1000 / args.steps
            depformer_ms = 0.0
            if model.depformer is not None:
                text = logits[:, 0, 0].argmax(-1)
                for i in range(args.warmup):
                    gen.depformer_step(text, z)
                sync()
                t0 = time.perf_counter()
                for i in range(args.steps):
                    gen.depformer_step(text, z)
                sync()
                depformer_ms = (time.perf_counter() - t0) * 1000 / args.steps
        print(f"{b:>6}  {step_ms:>14.3f}  {temporal_ms:>14.3f}  {depformer_ms:>16.3f}", flush=True)


if __name__ == "__main__":
    main()
