"""Reference (Python `moshi` package) counterpart of `monologue bench codec`.

Streaming Mimi encode and decode, one 80 ms frame per step, per-frame wall time and real-time factor for
each batch size, on the released architecture with random weights (speed does not depend on the values).
Same protocol as the C++ benchmark: `mimi.streaming(B)`, warm-up frames first, then timed frames.

    NO_TORCH_COMPILE=1 ~/.cache/monologue/venv/bin/python bench/bench_codec_reference.py \
        --threads 2 --batch 1,8 --frames 50 [--device cuda]

On CUDA the reference wraps its streaming modules in CUDA graphs (as it does in production) unless
NO_CUDA_GRAPH=1 is set.
"""
import argparse
import os
import time

import torch

from moshi.models import loaders


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", default="1,8")
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--codebooks", type=int, default=32)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    mimi = loaders.get_mimi(None, device=device, num_codebooks=args.codebooks)
    frame = mimi.frame_size
    frame_ms = 1000.0 * frame / mimi.sample_rate

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # moshi's own reading of NO_CUDA_GRAPH (moshi/utils/compile.py): "", "0", "no", "n" leave graphs on.
    graphs_on = os.environ.get("NO_CUDA_GRAPH", "").lower() in {"0", "no", "n", ""}
    print(f"reference moshi bench codec: released architecture, random weights, device {device}, "
          f"{args.threads} threads, {args.codebooks} codebooks, {args.frames} frames (+{args.warmup} warm-up), "
          f"CUDA graphs {'on (if cuda)' if graphs_on else 'off'}")
    print(f"{'batch':>6}  {'encode ms/frame':>18}  {'encode RTF':>10}  {'decode ms/frame':>18}  {'decode RTF':>10}")
    for b in [int(x) for x in args.batch.split(",")]:
        n = args.frames + args.warmup
        pcm = (torch.randn(b, 1, frame * n) * 0.1).to(device)
        codes = torch.randint(mimi.cardinality, (b, args.codebooks, n)).to(device)
        with torch.no_grad():
            with mimi.streaming(b):
                for i in range(args.warmup):
                    mimi.encode(pcm[..., i * frame:(i + 1) * frame])
                sync()
                t0 = time.perf_counter()
                for i in range(args.warmup, n):
                    mimi.encode(pcm[..., i * frame:(i + 1) * frame])
                sync()
                enc = 1000.0 * (time.perf_counter() - t0) / args.frames
            with mimi.streaming(b):
                for i in range(args.warmup):
                    mimi.decode(codes[..., i:i + 1])
                sync()
                t0 = time.perf_counter()
                for i in range(args.warmup, n):
                    mimi.decode(codes[..., i:i + 1])
                sync()
                dec = 1000.0 * (time.perf_counter() - t0) / args.frames
        print(f"{b:>6}  {enc:>18.2f}  {enc / frame_ms:>10.3f}  {dec:>18.2f}  {dec / frame_ms:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
