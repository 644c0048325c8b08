"""Reference fixtures for streaming speech recognition (asr/, tests/asr, tests/cli/transcribe_test.cc).

Run with the project's venv, after building `monologue-make-model`:
    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python tests/reference/make_asr_fixtures.py \
        --make-model build/monologue-make-model \
        --dsm-script /path/to/delayed-streams-modeling/scripts/stt_from_file_pytorch.py
(the DSM repository: github.com/kyutai-labs/delayed-streams-modeling; the fixtures were made from its HEAD of
November 2026, moshi 0.2.13, torch 2.11 CPU, espeak-ng 1.51, SoX 14.4.2).

Writes tests/data/asr/:
  tiny-stt/         a model directory in the released layout: the `tiny-stt` preset written by
                    `monologue-make-model --preset tiny-stt --dtype f32 --seed 0` with the tiny trained
                    tokenizer, then text_linear rows 0 (EPAD) and 3 (PAD) scaled by 3 so that the random model
                    emits word boundaries and pauses between varied pieces (raw random weights never emit them).
  tiny-stt-prefix/  config.json only (weights by relative name from tiny-stt/): the same model with
                    stt_config {audio_silence_prefix_seconds 0.2, audio_delay_seconds 0.3}, so the left padding
                    is not a whole frame and the right padding (delay + 1 s) ends mid-frame.
  speech_en.wav, speech_fr.wav   espeak-ng speech, 24 kHz mono 16-bit (sox, no dither): read bit-exactly by
                    both the reference (sphn) and the C++ decoder.
  ref_<model>_<clip>.safetensors  tokens int64 [N] (the text token of every recorded step) and vad f32 [N, H]
                    (class 0 = "no voice activity" of each extra head at that step).
  ref_<model>_<clip>.json         the words with their timestamps, the transcript, framing numbers, and
                    end_of_turn_steps: the steps at which the DSM script's --vad loop prints "[end of turn
                    detected]" when fed this recorded step stream (see below).
  timestamp_cases.json            scripted token streams (multi-word segments, EOS, long tails) and the words
                    the reference timestamp function gives them.

The transcription path is the reference's own: `moshi.run_inference.InferenceState` (model_type "stt":
left pad prefix, right pad delay + 1 s, complete frames only, first frame fed twice), batch 1, greedy as the
config's lm_gen_config says. Its LMGen.step is wrapped to call step_with_extra_heads (same computation, plus
the extra-head softmaxes) and record each step; the first (duplicated-frame) step is dropped as run() drops it.

Word timestamps: the function `tokens_to_timestamped_text` of the DSM script stt_from_file_pytorch.py, loaded
from that file (not copied), with offset_seconds = prefix + delay (the run_inference framing shifts the audio by
exactly the prefix) and one fix: when the last segment has no EOS and is followed by more than 12.5 steps, the
reference computes a float slice end (start + frame_rate) and torch refuses to slice with it; the fix slices
up to ceil(end) (tokens whose index is below start + 12.5), and the timestamp keeps the float end.

End of turn: the DSM script's main() itself (its --vad loop: head 2's class-0 probability above 0.5, printed once
until the next text piece), run over the recorded steps: its model, Mimi, audio reader and LMGen are stand-ins
that replay the recorded tokens and extra heads one step per chunk, with no prefix or suffix chunks, so its loop
sees exactly the recorded steps. The steps at which it prints "[end of turn detected]" are stored.
Only those, without touching any other fixture byte (the JSON is rewritten with one more key):
    ~/.cache/monologue/venv/bin/python tests/reference/make_asr_fixtures.py --only-end-of-turn \
        --dsm-script /path/to/delayed-streams-modeling/scripts/stt_from_file_pytorch.py
(julius, which the DSM script imports, is in the venv: scripts/setup.sh.)
"""
import argparse
import ast
import contextlib
import importlib.util
import types
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import sphn  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from moshi.models import loaders  # noqa: E402
from moshi.run_inference import InferenceState  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "asr"
TOKENIZER = ROOT / "tests" / "data" / "tokenizers" / "tiny_en_fr_400.model"

CLIPS = {
    "speech_en": ("en-us", "Hello world, this is a small test of streaming speech recognition in monologue."),
    "speech_fr": ("fr", "Bonjour tout le monde, il fait beau aujourd'hui."),
}


def load_reference_timestamp_function(script: Path):
    """tokens_to_timestamped_text (and TimestampedText) from the DSM script, with the slice fix."""
    source = script.read_text()
    tree = ast.parse(source)
    wanted = {"TimestampedText", "tokens_to_timestamped_text"}
    lines = source.splitlines()
    parts = ["\n".join(lines[min([n.lineno] + [d.lineno for d in n.decorator_list]) - 1:n.end_lineno])
             for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in wanted]
    assert len(parts) == 2, "DSM script layout changed"
    code = "\n\n".join(parts)
    before = "text = _decode(text_tokens[start:end])"
    assert code.count(before) == 1, "DSM script layout changed"
    code = code.replace(before, "text = _decode(text_tokens[int(start):math.ceil(end)])")
    ns = {"dataclasses": __import__("dataclasses"), "torch": torch, "math": math}
    exec(compile(code, str(script), "exec"), ns)
    return ns["tokens_to_timestamped_text"]


def reference_end_of_turn_steps(script: Path, tokens, vad, tokenizer) -> list[int]:
    """The steps at which the DSM script's main() reports an end of turn, replaying (tokens, vad) as its model."""
    import numpy as np

    spec = importlib.util.spec_from_file_location("dsm_stt_from_file", script)
    dsm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dsm)
    frame_size, steps = 1920, len(tokens)
    current = {"step": -1}
    reported = []

    class ReplayLMGen:  # moshi.models.LMGen stand-in: the recorded step outputs, one per call
        def __init__(self, lm, **kwargs):
            pass

        def streaming(self, batch_size):
            return contextlib.nullcontext()

        def step_with_extra_heads(self, audio_tokens):
            current["step"] += 1
            s = current["step"]
            heads = [torch.tensor([[[float(p)]]]) for p in vad[s].tolist()]  # [B, 1, class 0 only]
            return torch.tensor([[[int(tokens[s])]]]), heads

    mimi = types.SimpleNamespace(sample_rate=24000, frame_size=frame_size, frame_rate=12.5,
                                 streaming=lambda batch_size: contextlib.nullcontext(),
                                 encode=lambda chunk: None)
    info = types.SimpleNamespace(
        stt_config={"audio_silence_prefix_seconds": 0.0, "audio_delay_seconds": 0.0}, raw_config={},
        get_mimi=lambda device: mimi, get_text_tokenizer=lambda: tokenizer, get_moshi=lambda **kw: None)
    dsm.moshi = types.SimpleNamespace(models=types.SimpleNamespace(
        LMGen=ReplayLMGen,
        loaders=types.SimpleNamespace(CheckpointInfo=types.SimpleNamespace(from_hf_repo=lambda *a, **k: info))))
    dsm.sphn = types.SimpleNamespace(read=lambda path: (np.zeros((1, steps * frame_size), np.float32), 24000))

    def print_hook(*values, **kwargs):
        if any("end of turn detected" in str(v) for v in values):
            reported.append(current["step"])

    dsm.print = print_hook
    # After the loop main() times the words; that is words_of()'s job (and its float slice fails, see above).
    dsm.tokens_to_timestamped_text = lambda *a, **k: []
    args = argparse.Namespace(in_file="replay", hf_repo="replay", tokenizer=None, moshi_weight=None,
                              mimi_weight=None, config_path=None, vad=True, device="cpu")
    dsm.main(args)
    assert current["step"] == steps - 1, f"the DSM loop ran {current['step'] + 1} steps, recorded {steps}"
    return reported


def add_end_of_turn(script: Path):
    """Adds end_of_turn_steps to the existing ref_*.json from their recorded tokens and heads (nothing else)."""
    tokenizer = checkpoint_info(OUT / "tiny-stt").get_text_tokenizer()
    for path in sorted(OUT.glob("ref_*.json")):
        meta = json.loads(path.read_text())
        recorded = load_file(str(path.with_suffix(".safetensors")))
        meta["end_of_turn_steps"] = reference_end_of_turn_steps(script, recorded["tokens"], recorded["vad"],
                                                                tokenizer)
        path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name}: end of turn at steps {meta['end_of_turn_steps']}")


def make_model(make_model_bin: Path, out: Path):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(make_model_bin), "--preset", "tiny-stt", "--dtype", "f32", "--seed", "0",
                        "--tokenizer", str(TOKENIZER), "--out", tmp], check=True, stdout=subprocess.DEVNULL)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(tmp, out)
    out.chmod(0o755)
    weights = load_file(str(out / "model.safetensors"))
    w = weights["text_linear.weight"].clone()
    w[0] *= 3.0  # EPAD: word boundaries
    w[3] *= 3.0  # PAD: pauses
    weights["text_linear.weight"] = w
    save_file(weights, str(out / "model.safetensors"))
    # The prefix variant reuses the weights by relative name.
    cfg = json.loads((out / "config.json").read_text())
    cfg["stt_config"] = {"audio_silence_prefix_seconds": 0.2, "audio_delay_seconds": 0.3}
    for key in ("moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name"):
        cfg[key] = f"../{out.name}/{cfg[key]}"
    prefix_dir = out.parent / f"{out.name}-prefix"
    prefix_dir.mkdir(exist_ok=True)
    (prefix_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def make_speech(out: Path):
    with tempfile.TemporaryDirectory() as tmp:
        for name, (voice, text) in CLIPS.items():
            raw = Path(tmp) / f"{name}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", "170", "-w", str(raw), text], check=True)
            subprocess.run(["sox", "-R", "-D", str(raw), "-r", "24000", "-b", "16", "-c", "1",
                            str(out / f"{name}.wav")], check=True)


def checkpoint_info(d: Path) -> loaders.CheckpointInfo:
    raw = json.loads((d / "config.json").read_text())
    return loaders.CheckpointInfo.from_hf_repo(
        "local/unused", moshi_weights=d / raw["moshi_name"], mimi_weights=d / raw["mimi_name"],
        tokenizer=d / raw["tokenizer_name"], config_path=d / "config.json",
        mimi_config_path=d / raw["mimi_config_name"])


def run_reference(model_dir: Path, wav: Path):
    info = checkpoint_info(model_dir)
    mimi = info.get_mimi(device="cpu")
    lm = info.get_moshi(device="cpu", dtype=torch.float32)
    tokenizer = info.get_text_tokenizer()
    state = InferenceState(info, mimi, tokenizer, lm, batch_size=1, cfg_coef=1.0, device="cpu",
                           **info.lm_gen_config)
    gen = state.lm_gen
    records = []

    def step(codes, depformer_replace_tokens=None):
        out = gen.step_with_extra_heads(codes)
        if out is None:
            return None
        tokens, heads = out
        records.append((int(tokens[0, 0, 0]), [float(h[0, 0, 0]) for h in heads]))
        return tokens

    gen.step = step
    pcm, sr = sphn.read(str(wav))
    assert sr == 24000 and pcm.shape[0] == 1
    with torch.no_grad():
        state.run(torch.from_numpy(pcm)[None])
    records = records[1:]  # the first frame's duplicate step (run() discards its output)
    tokens = torch.tensor([r[0] for r in records], dtype=torch.int64)
    vad = torch.tensor([r[1] for r in records], dtype=torch.float32)
    return info, tokenizer, pcm.shape[-1], tokens, vad


def words_of(fn, tokens, tokenizer, offset):
    out = fn(tokens, tokenizer, 12.5, end_of_padding_id=0, padding_token_id=3, offset_seconds=offset)
    return [{"text": w.text, "start": float(w.timestamp[0]), "end": float(w.timestamp[1])} for w in out]


def timestamp_cases(fn, tokenizer):
    gen = torch.Generator().manual_seed(1234)
    vocab = tokenizer.vocab_size()
    cases = []
    # Hand-written streams: no boundary at all; one word; a segment of several words; EOS closing the last
    # segment; EOS inside a middle segment (dropped from the text); a tail longer than 12.5 steps.
    pieces = lambda text: tokenizer.encode(text)  # noqa: E731
    scripted = [
        [3, 3, 45, 46, 3],
        [3, 0, *pieces("bonjour"), 3, 3],
        [0, *pieces("hello world again"), 3, 0, *pieces("merci"), 0, 3, 3],
        [3, 0, *pieces("the"), 0, *pieces("small test"), 3, 2, 3, 3, 0, 3],
        [0, *pieces("one"), 2, *pieces("two"), 0, *pieces("three"), 3, 3, 2, 3, *pieces("four")],
        [0, *pieces("long"), *([3] * 20), *pieces("tail"), 3, 3],
        [0, 0, 0, 3, 0],
    ]
    for tokens in scripted:
        cases.append({"tokens": tokens, "offset": 0.5})
    # Random streams mixing pieces with frequent boundaries, pauses and the odd EOS.
    for i in range(12):
        n = int(torch.randint(20, 80, (1,), generator=gen))
        kind = torch.rand(n, generator=gen)
        ids = torch.randint(4, vocab, (n,), generator=gen)
        ids[kind < 0.25] = 0
        ids[(kind >= 0.25) & (kind < 0.5)] = 3
        ids[(kind >= 0.5) & (kind < 0.52)] = 2
        cases.append({"tokens": ids.tolist(), "offset": [0.0, 0.5, 1.3, 3.5][i % 4]})
    for case in cases:
        case["words"] = words_of(fn, torch.tensor(case["tokens"], dtype=torch.int64), tokenizer, case["offset"])
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-model", type=Path, help="the monologue-make-model binary")
    ap.add_argument("--dsm-script", type=Path, required=True,
                    help="delayed-streams-modeling/scripts/stt_from_file_pytorch.py")
    ap.add_argument("--only-end-of-turn", action="store_true",
                    help="only add end_of_turn_steps to the existing ref_*.json (other fixtures unchanged)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if args.only_end_of_turn:
        add_end_of_turn(args.dsm_script)
        return
    if args.make_model is None:
        ap.error("--make-model is required (except with --only-end-of-turn)")
    fn = load_reference_timestamp_function(args.dsm_script)
    OUT.mkdir(parents=True, exist_ok=True)
    make_model(args.make_model, OUT / "tiny-stt")
    make_speech(OUT)
    for model in ("tiny-stt", "tiny-stt-prefix"):
        for clip in CLIPS:
            info, tokenizer, samples, tokens, vad = run_reference(OUT / model, OUT / f"{clip}.wav")
            prefix = float(info.stt_config.get("audio_silence_prefix_seconds", 0.0))
            delay = float(info.stt_config.get("audio_delay_seconds", 0.0))
            offset = prefix + delay
            words = words_of(fn, tokens, tokenizer, offset)
            save_file({"tokens": tokens, "vad": vad}, str(OUT / f"ref_{model}_{clip}.safetensors"))
            meta = {
                "model": model, "clip": f"{clip}.wav", "samples": samples, "steps": len(tokens),
                "pad_left": int(prefix * 24000), "pad_right": int((delay + 1.0) * 24000),
                "offset_seconds": offset,
                "transcript": tokenizer.decode([t for t in tokens.tolist() if t > 3]),
                "words": words,
                "end_of_turn_steps": reference_end_of_turn_steps(args.dsm_script, tokens, vad, tokenizer),
            }
            (OUT / f"ref_{model}_{clip}.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
            print(f"{model} {clip}: {len(tokens)} steps, {len(words)} words: {meta['transcript'][:70]}")
    tokenizer = checkpoint_info(OUT / "tiny-stt").get_text_tokenizer()
    cases = timestamp_cases(fn, tokenizer)
    (OUT / "timestamp_cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"timestamp cases: {len(cases)}")


if __name__ == "__main__":
    sys.exit(main())
