"""Reference fixtures for full-duplex dialogue (dialogue/, tests/dialogue, tests/cli/chat_test.cc).

Run with the project's venv, after building `monologue-make-model`:
    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python tests/reference/make_dialogue_fixtures.py \
        --make-model build/monologue-make-model
(made with moshi 0.2.13, torch CPU, one thread).

The model: `monologue-make-model --preset tiny-moshi-8 --dtype f32 --seed 0` with the tiny tokenizer
tests/data/tokenizers/tiny_en_fr_400.model (the released Moshi stream layout: text + 8 generated + 8 user
streams, delays [0, 0,1x7, 0,1x7], dim 64, 2 layers, the tiny Mimi). Its weights follow the deterministic init
rule, so the tests regenerate the same bytes in C++ (core/model/random_model.h) and nothing big is committed.
Two variants differ only by their config.json (the weights are the same files):
  gencfg  lm_gen_config {"temp": 0.9, "temp_text": 0.6, "top_k": 40, "top_k_text": 20} (the checkpoint's
          sampling settings override the LMGen defaults);
  lora    "lora": true, "lora_scaling": 2.0 and the LoRA file lora.safetensors written here (rank 2 on every
          Linear of the LM, random A and B, in the released key naming: fused attention `in_proj`), fused at
          load by the reference loader (get_moshi(fuse_lora=True)).

Each case runs the reference's own offline loop, `moshi.run_inference.InferenceState.run` (complete 1920-sample
frames only, the first frame fed twice, its first output dropped), batch 1, on the CPU in float32, with
torch.manual_seed(seed) right before run() (nothing draws in between). LMGen.step is wrapped to record the
text token and Moshi's 8 audio codes of every step that returns a frame. Prepended silence is zeros in front of
the clip, fed like any audio; the output is run()'s PCM padded with zeros to the input's length, with the
prepended samples dropped.

Writes tests/data/dialogue/:
  lora.safetensors            the LoRA weights (fused naming).
  cases.json                  per case: the model variant, clip, samples used, prepended samples, sampling
                              overrides (what `monologue chat` flags give), seed, frames.
  ref_<case>.safetensors      text_tokens int64 [F], codes int64 [8, F] (every step, prepended silence
                              included), and for some cases pcm f32 [samples] (Moshi's output, aligned).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import sphn  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from moshi.models import loaders  # noqa: E402
from moshi.modules.lora import replace_all_linear_with_lora  # noqa: E402
from moshi.run_inference import InferenceState  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "dialogue"
TOKENIZER = ROOT / "tests" / "data" / "tokenizers" / "tiny_en_fr_400.model"
CLIPS = ROOT / "tests" / "data" / "asr"
SAMPLES = 30000  # 15 complete frames and a 1200-sample tail
GENCFG = {"temp": 0.9, "temp_text": 0.6, "top_k": 40, "top_k_text": 20}
GREEDY = {"temp": 0.0, "temp_text": 0.0}
# The reference LMGen's top_k 250 exceeds the tiny card (64): torch.topk would refuse it.
SAMPLED = {"temp": 0.8, "temp_text": 0.7, "top_k": 50, "top_k_text": 25}
LORA_RANK = 2

# name: variant, clip, prepended seconds, sampling overrides, seed, keep pcm
CASES = {
    "greedy_en": ("base", "speech_en", 0.0, GREEDY, 0, True),
    "greedy_fr": ("base", "speech_fr", 0.0, GREEDY, 0, False),
    "greedy_en_silence": ("base", "speech_en", 0.5, GREEDY, 0, False),
    "sampled_en": ("base", "speech_en", 0.0, SAMPLED, 1234, True),
    "sampled_fr_silence": ("base", "speech_fr", 1.0, SAMPLED, 7, False),
    "gencfg_en": ("gencfg", "speech_en", 0.0, {}, 42, False),
    "lora_greedy_en": ("lora", "speech_en", 0.0, GREEDY, 0, False),
    "lora_sampled_fr": ("lora", "speech_fr", 0.0, SAMPLED, 99, False),
}


def make_model(make_model_bin: Path, out: Path):
    subprocess.run([str(make_model_bin), "--preset", "tiny-moshi-8", "--dtype", "f32", "--seed", "0",
                    "--tokenizer", str(TOKENIZER), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)


def variant_config(base: Path, variant: str, dest: Path) -> Path:
    cfg = json.loads((base / "config.json").read_text())
    if variant == "gencfg":
        cfg["lm_gen_config"] = dict(GENCFG)
    elif variant == "lora":
        cfg["lora"] = True
        cfg["lora_scaling"] = 2.0
        cfg["lora_rank"] = LORA_RANK
        cfg["lora_name"] = "lora.safetensors"
    path = dest / f"config_{variant}.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def checkpoint_info(base: Path, config_path: Path, lora: Path | None) -> loaders.CheckpointInfo:
    return loaders.CheckpointInfo.from_hf_repo(
        "local/unused", moshi_weights=base / "model.safetensors", mimi_weights=base / "mimi.safetensors",
        tokenizer=base / "tokenizer.model", config_path=config_path,
        mimi_config_path=base / "mimi_config.json", lora_weights=lora)


def make_lora(base: Path, config_path: Path, out: Path):
    """Random LoRA weights for every Linear of the base LM, saved under the names the reference loader reads
    (the attention's in_projs/out_projs lists fused into in_proj/out_proj, as in the released files)."""
    info = checkpoint_info(base, config_path, None)
    model = info.get_moshi(device="cpu", dtype=torch.float32)
    replace_all_linear_with_lora(model, LORA_RANK, 2.0, device="cpu")
    g = torch.Generator().manual_seed(2026)
    lora: dict[str, torch.Tensor] = {}
    fused: dict[str, list] = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_A." not in name and ".lora_B." not in name:
                continue
            v = (0.3 * torch.randn(p.shape, generator=g)).contiguous()
            for part, target in (("in_projs", "in_proj"), ("out_projs", "out_proj")):
                marker = f".{part}."
                if marker in name:
                    prefix, rest = name.split(marker)
                    index, suffix = rest.split(".", 1)
                    fused.setdefault(f"{prefix}.{target}.{suffix}", []).append((int(index), v))
                    break
            else:
                lora[name] = v
    for k, parts in fused.items():
        parts.sort(key=lambda x: x[0])
        lora[k] = torch.cat([p for _, p in parts], dim=0).contiguous()
    save_file(lora, str(out))


def run_case(info, clip: Path, prepend_s: float, overrides: dict, seed: int, fuse_lora: bool):
    mimi = info.get_mimi(device="cpu")
    kwargs = {"fuse_lora": True} if fuse_lora else {}
    lm = info.get_moshi(device="cpu", dtype=torch.float32, **kwargs)
    tokenizer = info.get_text_tokenizer()
    gen_kwargs = dict(info.lm_gen_config)
    gen_kwargs.update(overrides)
    state = InferenceState(info, mimi, tokenizer, lm, batch_size=1, cfg_coef=1.0, device="cpu", **gen_kwargs)
    gen = state.lm_gen
    original_step = gen.step
    records = []

    def step(codes, *args, **kw):
        tokens = original_step(codes, *args, **kw)
        if tokens is not None:
            records.append(tokens[0, :, 0].clone())
        return tokens

    gen.step = step
    pcm, sr = sphn.read(str(clip))
    assert sr == 24000 and pcm.shape[0] == 1
    pcm = torch.from_numpy(pcm[:, :SAMPLES])
    prepend = int(prepend_s * 24000)
    x = torch.cat([torch.zeros(1, prepend), pcm], dim=1)[None]  # [1, 1, L]
    torch.manual_seed(seed)
    with torch.no_grad():
        (text_tokens, out_pcm), = state.run(x)
    total = x.shape[-1]
    frames = total // 1920
    assert len(records) == frames == out_pcm.shape[-1] // 1920, (len(records), frames, out_pcm.shape)
    steps = torch.stack(records)  # [F, 1 + 8]
    assert torch.equal(steps[:, 0], text_tokens)
    out = torch.zeros(total)
    out[:out_pcm.shape[-1]] = out_pcm[0]
    return steps[:, 0].contiguous(), steps[:, 1:].T.contiguous(), out[prepend:].contiguous(), prepend, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-model", type=Path, required=True, help="the monologue-make-model binary")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"preset": "tiny-moshi-8", "seed": 0, "dtype": "f32", "samples": SAMPLES, "gencfg": GENCFG,
            "lora_rank": LORA_RANK, "lora_scaling": 2.0, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "tiny-moshi-8"
        make_model(args.make_model, base)
        configs = {v: variant_config(base, v, Path(tmp)) for v in ("base", "gencfg", "lora")}
        lora_path = OUT / "lora.safetensors"
        make_lora(base, configs["base"], lora_path)
        for name, (variant, clip, prepend_s, overrides, seed, keep_pcm) in CASES.items():
            lora = lora_path if variant == "lora" else None
            info = checkpoint_info(base, configs[variant], lora)
            text, codes, pcm, prepend, total = run_case(info, CLIPS / f"{clip}.wav", prepend_s, overrides, seed,
                                                        fuse_lora=lora is not None)
            tensors = {"text_tokens": text, "codes": codes}
            if keep_pcm:
                tensors["pcm"] = pcm
            save_file(tensors, str(OUT / f"ref_{name}.safetensors"))
            meta["cases"][name] = {"variant": variant, "clip": f"{clip}.wav", "samples": SAMPLES,
                                   "prepend_samples": prepend, "overrides": overrides, "seed": seed,
                                   "frames": int(text.shape[0]), "pcm": keep_pcm}
            nonpad = [t for t in text.tolist() if t not in (0, 3)]
            print(f"{name}: {text.shape[0]} frames, {len(set(text.tolist()))} distinct text tokens "
                  f"({len(nonpad)} printable), {len(set(codes.flatten().tolist()))} distinct codes, "
                  f"pcm rms {pcm.pow(2).mean().sqrt():.4f}")
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
