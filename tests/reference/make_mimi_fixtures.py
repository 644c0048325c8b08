"""Reference fixtures for the C++ Mimi codec (core/mimi, tests/mimi).

Run with the project's venv:
    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python tests/reference/make_mimi_fixtures.py

Two models, both built by the reference package (`moshi.models.loaders.get_mimi`) and filled with the
counter-based deterministic weights of tests/reference/detinit.py (per-tensor rule `offset + scale * u`):

- "tiny": a small Mimi (same strides / frame size as the release, few channels, attention context 10 so the
  ring KV cache wraps after 5 frames). Its weights are small, so they are written in full to
  tests/data/mimi/tiny_mimi.safetensors (checkpoint naming) with its config in tiny_mimi_config.json.
- "real": the released architecture (loaders._mimi_config). Its 385 MB of weights are NOT written: the
  fixture stores, per checkpoint tensor, "init:<name>" -> "scale offset" and "shape:<name>" -> "d0,d1,..",
  plus "seed"; the C++ test regenerates them with DeterministicTensor.

Inputs are speech made with espeak-ng (resampled to 24 kHz by sox). Outputs: offline codes (8 and 32
codebooks), streaming codes, offline and streaming decode, a mid-stream reset, each as computed by the
reference on CPU in float32 with one thread.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detinit import deterministic_tensor  # noqa: E402

from moshi.models import loaders  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "mimi"
SEED = 20250517
FRAME = 1920

TINY_CONFIG = {
    "sample_rate": 24000,
    "channels": 1,
    "frame_rate": 12.5,
    "seanet": dict(loaders._seanet_kwargs, dimension=32, n_filters=4),
    "quantizer": dict(loaders._quantizer_kwargs, dimension=16, n_q=32, bins=128, input_dimension=32,
                      output_dimension=32),
    "transformer": dict(loaders._transformer_kwargs, d_model=32, num_heads=4, num_layers=2, context=10,
                        dim_feedforward=64, input_dimension=32, output_dimensions=[32]),
}


def checkpoint_name(name: str) -> str:
    """state_dict name -> released checkpoint name (the attention load hook's inverse)."""
    return name.replace("self_attn.in_projs.0.weight", "self_attn.in_proj_weight").replace(
        "self_attn.out_projs.0.weight", "self_attn.out_proj.weight")


def init_rule(name: str, shape) -> tuple[float, float]:
    """(scale, offset) per checkpoint tensor: activations stay O(1), codes stay varied."""
    last = name.split(".")[-1]
    if name.endswith("_codebook._initialized"):
        return 0.0, 1.0
    if name.endswith("_codebook.cluster_usage"):
        return 0.5, 1.0
    if name.endswith("_codebook.embedding_sum"):
        # Different scale per level: level l of each RVQ gets 0.25 * 0.97**l.
        level = int(name.split(".vq.layers.")[1].split(".")[0])
        return 0.25 * (0.97 ** level), 0.0
    if "layer_scale" in name:
        return 0.04, 0.05
    if ".norm" in name:
        return (0.1, 1.0) if last == "weight" else (0.05, 0.0)
    if last == "bias":
        return 0.02, 0.0
    if "convtr" in name:
        # ConvTranspose1d weight [in, out / groups, k]: each output sums in * k / stride terms.
        cin, _, k = shape
        stride = k // 2
        fan_in = cin * k // stride
        if "upsample" in name:
            fan_in = k // stride
        return float(np.sqrt(3.0 / fan_in)), 0.0
    if len(shape) == 3:  # Conv1d [out, in, k]
        return float(np.sqrt(3.0 / (shape[1] * shape[2]))), 0.0
    if len(shape) == 2:  # Linear [out, in]
        return float(np.sqrt(3.0 / shape[1])), 0.0
    raise ValueError(f"no init rule for {name} {shape}")


def build(config: dict):
    model = loaders.get_mimi(None, config, device="cpu", num_codebooks=32)
    rules = {}
    state = model.state_dict()
    new_state = {}
    for name, value in state.items():
        ck = checkpoint_name(name)
        scale, offset = init_rule(ck, tuple(value.shape))
        rules[ck] = (scale, offset, tuple(value.shape))
        new_state[name] = deterministic_tensor(SEED, ck, tuple(value.shape), scale, offset)
    model.load_state_dict(new_state)
    model.eval()
    return model, rules


def speech(text: str, voice: str, speed: int = 160) -> torch.Tensor:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        wav = Path(tmp) / "24k.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(["sox", "-D", str(raw), "-r", "24000", "-c", "1", "-b", "16", "-e", "signed-integer",
                        str(wav)], check=True)
        data = wav.read_bytes()
    # Minimal RIFF parse: find the "data" chunk.
    pos = 12
    while pos < len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"data":
            pcm = np.frombuffer(data[pos + 8:pos + 8 + size], dtype="<i2").astype(np.float32) / 32768.0
            return torch.from_numpy(pcm.copy())
        pos += 8 + size + (size & 1)
    raise RuntimeError("no data chunk")


def fit(pcm: torch.Tensor, frames: int) -> torch.Tensor:
    """Exactly `frames` * 1920 samples (loops the clip if it is short)."""
    n = frames * FRAME
    reps = (n + pcm.numel() - 1) // pcm.numel()
    return pcm.repeat(reps)[:n].contiguous()


@torch.no_grad()
def stream_encode(model, pcm: torch.Tensor, n_q: int) -> torch.Tensor:
    """pcm [B, 1, L]; one 1920-sample frame per step."""
    model.set_num_codebooks(n_q)
    codes = []
    with model.streaming(pcm.shape[0]):
        for t in range(pcm.shape[-1] // FRAME):
            codes.append(model.encode(pcm[..., t * FRAME:(t + 1) * FRAME]))
    return torch.cat(codes, dim=-1)


@torch.no_grad()
def stream_encode_with_reset(model, first: torch.Tensor, second: torch.Tensor, n_q: int) -> torch.Tensor:
    model.set_num_codebooks(n_q)
    codes = []
    with model.streaming(1):
        for src in (first, second):
            for t in range(src.shape[-1] // FRAME):
                codes.append(model.encode(src[..., t * FRAME:(t + 1) * FRAME]))
            model.reset_streaming()
    return torch.cat(codes, dim=-1)


@torch.no_grad()
def stream_decode(model, codes: torch.Tensor, reset_after: int | None = None) -> torch.Tensor:
    outs = []
    with model.streaming(codes.shape[0]):
        for t in range(codes.shape[-1]):
            outs.append(model.decode(codes[..., t:t + 1]))
            if reset_after is not None and t + 1 == reset_after:
                model.reset_streaming()
    return torch.cat(outs, dim=-1)


@torch.no_grad()
def offline_latent(model, pcm):
    return model._encode_to_unquantized_latent(pcm)


def make_cases(model, clips: dict, long_frames: int, short_frames: int, decode_frames: int) -> dict:
    out = {}
    a = fit(clips["a"], short_frames).view(1, 1, -1)
    b = fit(clips["b"], short_frames - 3).view(1, 1, -1)
    long = fit(clips["long"], long_frames).view(1, 1, -1)
    out["input_a"] = a
    out["input_b"] = b
    out["input_long"] = long
    # Offline encode: not a multiple of the frame size (the model pads the tail), 8 and 32 codebooks.
    a_cut = a[..., :-700].clone()
    out["input_a_cut"] = a_cut
    model.set_num_codebooks(32)
    out["offline_latent_a_cut"] = offline_latent(model, a_cut)
    for n in (8, 32):
        model.set_num_codebooks(n)
        with torch.no_grad():
            out[f"offline_codes{n}_a_cut"] = model.encode(a_cut)
    # Streaming encode, long clip (ring KV cache wraps), 32 codebooks; and 8 codebooks on clip a.
    out["stream_codes32_long"] = stream_encode(model, long, 32)
    out["stream_codes8_a"] = stream_encode(model, a, 8)
    # Reset in the middle of a stream: clip b, reset, clip a (must equal a fresh stream of a).
    out["stream_codes32_b_reset_a"] = stream_encode_with_reset(model, b, a, 32)
    # Offline and streaming decode of the reference's own codes.
    codes = out["stream_codes32_long"][..., :decode_frames].contiguous()
    out["decode_codes"] = codes
    model.set_num_codebooks(32)
    with torch.no_grad():
        out["offline_decode"] = model.decode(codes)
    out["stream_decode"] = stream_decode(model, codes)
    codes8 = codes[:, :8].contiguous()
    out["stream_decode8"] = stream_decode(model, codes8)
    half = decode_frames // 2
    out["stream_decode_reset"] = stream_decode(model, codes, reset_after=half)
    return {k: v.contiguous().clone() for k, v in out.items()}


def describe(name, cases):
    for k, v in cases.items():
        if v.dtype == torch.int64:
            print(f"  {name}.{k}: {tuple(v.shape)} distinct codes per level "
                  f"{[len(torch.unique(v[0, i])) for i in range(min(v.shape[1], 4))]}...")
        else:
            print(f"  {name}.{k}: {tuple(v.shape)} std {v.float().std():.4f}")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    clips = {
        "a": speech("The quick brown fox jumps over the lazy dog, then naps in the sun.", "en-us"),
        "b": speech("Bonjour, je m'appelle Mimi et je transforme la voix en codes.", "fr"),
        "long": speech("Streaming codecs turn speech into a few tokens every eighty milliseconds. "
                       "This sentence is long on purpose, so that the attention cache of the transformer "
                       "wraps around at least once while the stream goes on and on.", "en-gb", 150),
    }
    for k, v in clips.items():
        print(f"clip {k}: {v.numel() / 24000:.2f} s")

    # Tiny model: weights written in full.
    tiny, tiny_rules = build(TINY_CONFIG)
    tiny_sd = {checkpoint_name(k): v.contiguous() for k, v in tiny.state_dict().items()}
    save_file(tiny_sd, str(OUT / "tiny_mimi.safetensors"), metadata={"seed": str(SEED)})
    (OUT / "tiny_mimi_config.json").write_text(json.dumps(TINY_CONFIG, indent=2) + "\n")
    tiny_cases = make_cases(tiny, clips, long_frames=40, short_frames=12, decode_frames=24)
    describe("tiny", tiny_cases)
    save_file(tiny_cases, str(OUT / "tiny_cases.safetensors"), metadata={"context": "10"})

    # Real architecture: weights regenerated by the C++ test from the stored rule.
    real, real_rules = build(loaders._mimi_config)
    meta = {"seed": str(SEED)}
    for name, (scale, offset, shape) in real_rules.items():
        meta[f"init:{name}"] = f"{scale!r} {offset!r}"
        meta[f"shape:{name}"] = ",".join(str(d) for d in shape)
    # 10.9 s streaming clip: 136 frames = 272 encoder-transformer steps > context 250.
    real_cases = make_cases(real, clips, long_frames=136, short_frames=12, decode_frames=16)
    describe("real", real_cases)
    save_file(real_cases, str(OUT / "real_cases.safetensors"), metadata=meta)
    for f in sorted(OUT.iterdir()):
        print(f"{f.name}: {f.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
