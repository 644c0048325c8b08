"""The reference counterpart of `monologue bench synthesize`: the per-step time, and the time to first audio,
of the reference's own live TTS loop (moshi.models.tts.TTSModel.generate, with an `on_frame` callback that
decodes every valid frame through a streaming Mimi the way delayed-streams-modeling's tts_pytorch.py does when
it plays the audio live), on random weights of the architecture in a TTS config.json (Mimi: the architecture
of --mimi-config, or the released one, random weights).

    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python bench/bench_synthesize_reference.py \
        --config CONFIG.json [--mimi-config MIMI.json] [--batch 1,8,32] [--steps 20] [--warmup 3] [--threads 2] \
        [--dtype f32|bf16] [--device cpu] [--n-q N] [--tokenizer SPM.model]

CONFIG.json is a TTS config (model_type "tts": conditioners speaker_wavs/cfg/control, fuser, tts_config with
audio_delay and second_stream_ahead, model_id), e.g. from `monologue-make-model --config-only --preset
tts-1.6b-en_fr` (or --preset tiny-tts, whose mimi_config.json goes to --mimi-config).

The TTSModel is built as TTSModel.from_checkpoint_info builds it: TokenIds(card=text_card + 1),
StateMachine(second_stream_ahead, max_padding=8, initial_padding=2), delay_steps = int(audio_delay *
mimi.frame_rate), temp 0.6, n_q = --n-q or lm.dep_q (Mimi set to n_q codebooks), cfg_coef 1.0 on the model
(CFG distillation) and cfg 2.0 as a condition through make_condition_attributes. The voice is a random
[1, speaker_wavs dim, 125] embedding written to a temporary .safetensors. The script is prepared with
prepare_script([text], padding_between=1) as tts_pytorch.py does. Tokenizer: --tokenizer (default
tests/data/tokenizers/tiny_en_fr_400.model; a vocabulary smaller than the config's text_card is fine for
timing, the state machine forces the words). Sampling: temp 0.6, the LMGen top-k (250 audio, 25 text), capped
at the card (torch.topk refuses k > card on tiny models; no change at real size).

What is timed:
  * per batch size B (B copies of one long text, with more words than the steps run, so that no item can
    finish before generation is stopped): the wall time between consecutive on_frame calls (on_frame entry to
    on_frame entry), i.e. one 80 ms step of a live reference server: the LMGen step with the TTS hooks (state
    machine on the host, audio zeroing) + the streaming Mimi decode of the previous frame (+ frame.clone()
    that generate keeps). Only intervals between two valid frames count (frame index >= delay_steps: every
    item past the audio delay, depformer running); the first --warmup of them are skipped and the next
    --steps are averaged ("step ms") and their maximum reported ("max ms"); then generation is stopped by an
    exception raised from on_frame. RTF = step ms / 80.
  * time to first audio at batch 1: from just before prepare_script of the text (voice condition attributes
    already built, as a server holding its voices has them) to the moment on_frame has decoded the first
    valid frame's PCM; it includes the delay_steps + max_delay steps in which the reference skips the
    depformer (delay_steps of them) and emits no valid frame. Run 3 times, median printed, with the number
    of LM steps it took.
"""
import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from sentencepiece import SentencePieceProcessor  # noqa: E402

from moshi.models import loaders  # noqa: E402
from moshi.models.tts import StateMachine, TokenIds, TTSModel  # noqa: E402

NON_ARCH = ["moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name", "lora_name", "model_type",
            "lm_gen_config", "tts_config", "stt_config", "model_id", "lora", "lora_rank", "lora_scaling"]

REPO = Path(__file__).resolve().parent.parent
WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing softly near an old stone "
         "bridge and the river carries leaves toward the distant sea").split()


def step_spread(step_ms, frame_ms=80.0):
    """As monologue's bench (cli/bench_step_stats.cc): nearest-rank p50 and p95, and the least pre-roll a
    player starting at the first timed frame needs to play them all without a gap."""
    ranked = sorted(step_ms)

    def quantile(q):
        return ranked[min(max(math.ceil(q * len(ranked) - 1e-6), 1), len(ranked)) - 1]

    produced, buffer_ms = 0.0, 0.0
    for i, ms in enumerate(step_ms):
        produced += ms
        buffer_ms = max(buffer_ms, produced - step_ms[0] - frame_ms * i)
    return quantile(0.5), quantile(0.95), buffer_ms


class _Stop(Exception):
    pass


def long_text(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_words)) + "."


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--mimi-config", help="Mimi architecture JSON (loaders._mimi_config structure); default: released")
    p.add_argument("--batch", default="1,8,32")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="f32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-q", type=int, default=None, help="audio codebooks generated and decoded; default lm.dep_q")
    p.add_argument("--tokenizer", default=str(REPO / "tests/data/tokenizers/tiny_en_fr_400.model"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    with open(args.config) as f:
        raw = json.load(f)
    tts_config = raw.get("tts_config", {})
    model_id = raw["model_id"]
    cfg = {k: v for k, v in raw.items() if k not in NON_ARCH}
    torch.manual_seed(0)
    dev = args.device
    t_load = time.perf_counter()
    lm = loaders.get_moshi_lm(None, lm_kwargs=cfg, device=dev, dtype=dtype)
    lm.eval()
    mimi_config = None
    if args.mimi_config:
        with open(args.mimi_config) as f:
            mimi_config = json.load(f)
    num_codebooks = max(lm.dep_q, lm.n_q - lm.dep_q)
    if tts_config.get("multistream"):
        num_codebooks //= 2
    mimi = loaders.get_mimi(None, mimi_config, device=dev, num_codebooks=num_codebooks)
    mimi.eval()
    tokenizer = SentencePieceProcessor(args.tokenizer)  # type: ignore

    # As TTSModel.from_checkpoint_info builds it.
    token_ids = TokenIds(lm.text_card + 1)
    delay_steps = int(tts_config["audio_delay"] * mimi.frame_rate)
    machine = StateMachine(token_ids=token_ids, second_stream_ahead=tts_config.get("second_stream_ahead", 0),
                           max_padding=8, initial_padding=2)
    n_q = args.n_q if args.n_q is not None else lm.dep_q
    if n_q > lm.n_q:
        raise SystemExit(f"--n-q {n_q} > the model's n_q {lm.n_q}")
    tts = TTSModel(lm=lm, mimi=mimi, tokenizer=tokenizer,
                   voice_suffix=f".{model_id['sig']}@{model_id['epoch']}.safetensors",
                   voice_repo="kyutai/tts-voices", machine=machine, delay_steps=delay_steps,
                   multistream=tts_config.get("multistream", False), temp=0.6, n_q=n_q)
    mimi.set_num_codebooks(n_q // 2 if tts.multistream else n_q)
    if not tts.multi_speaker:
        tts.voice_suffix = ""
    # LMGen's top-k defaults (250 / 25), capped at the card for tiny models (torch.topk refuses k > card).
    gen_kwargs = dict(top_k=min(250, lm.card), top_k_text=min(25, lm.text_card + 1))
    max_delay = max(lm.delays)

    tmp = tempfile.TemporaryDirectory()
    voices = []
    if tts.multi_speaker:
        dim = raw["conditioners"]["speaker_wavs"]["tensor"]["dim"]
        voice_path = Path(tmp.name) / f"random_voice{tts.voice_suffix}"
        gen = torch.Generator().manual_seed(2)
        save_file({"speaker_wavs": torch.randn(1, dim, 125, generator=gen)}, str(voice_path))
        voices = [voice_path]
    # CFG distillation: cfg 2.0 is a condition; the model's own cfg_coef stays 1.0 (no doubled batch).
    cfg_coef = 2.0 if tts.valid_cfg_conditionings else None

    def attributes(b):
        return [tts.make_condition_attributes(voices, cfg_coef=cfg_coef) for _ in range(b)]

    load_s = time.perf_counter() - t_load
    print(f"reference TTS loop (TTSModel.generate + streaming mimi.decode in on_frame): {args.config} "
          f"(random weights), device {dev}, {args.dtype}, {args.threads} threads, n_q {n_q}, "
          f"delay_steps {delay_steps}, max_delay {max_delay}, {args.steps} steps (+{args.warmup} warm-up), "
          f"built in {load_s:.1f} s", flush=True)

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    # Each word takes at least one step, so more words than steps run means no item can end early.
    need_steps = delay_steps + max_delay + args.warmup + args.steps + 8
    text = long_text(max(200, need_steps + 20))

    print(f"{'batch':>6}  {'step ms':>10}  {'p50':>8}  {'p95':>8}  {'max':>8}  {'RTF':>8}  {'buffer ms':>10}",
          flush=True)
    for b in [int(x) for x in args.batch.split(",")]:
        entries = [tts.prepare_script([text], padding_between=1) for _ in range(b)]
        attrs = attributes(b)
        stamps = []  # on_frame entry times of valid frames, consecutive
        frame_idx = [0]
        stop_after = args.warmup + args.steps + 1

        def on_frame(frame):
            sync()
            now = time.perf_counter()
            k = frame_idx[0]
            frame_idx[0] += 1
            if k < delay_steps:
                return
            if not (frame != -1).all():
                raise RuntimeError(f"frame {k} (>= delay_steps {delay_steps}) has -1 tokens")
            stamps.append(now)
            if len(stamps) >= stop_after:
                raise _Stop()
            pcm = tts.mimi.decode(frame[:, 1:, :])
            torch.clip(pcm, -1, 1).cpu()

        with torch.no_grad(), tts.mimi.streaming(b):
            try:
                tts.generate(entries, attrs, on_frame=on_frame, **gen_kwargs)
                raise RuntimeError("generation ended before the timed steps were done")
            except _Stop:
                pass
        intervals = [(t1 - t0) * 1000 for t0, t1 in zip(stamps, stamps[1:])][args.warmup:]
        assert len(intervals) == args.steps, len(intervals)
        step_ms = sum(intervals) / len(intervals)
        p50, p95, buffer_ms = step_spread(intervals)
        print(f"{b:>6}  {step_ms:>10.2f}  {p50:>8.2f}  {p95:>8.2f}  {max(intervals):>8.2f}  {step_ms / 80:>8.3f}  "
              f"{buffer_ms:>10.1f}", flush=True)

    # Time to first audio, batch 1.
    attrs = attributes(1)
    ttfa = []
    steps_taken = []
    for _ in range(3):
        frame_idx = [0]
        first = [None]

        def on_frame(frame):
            k = frame_idx[0]
            frame_idx[0] += 1
            if (frame != -1).all():
                pcm = tts.mimi.decode(frame[:, 1:, :])
                torch.clip(pcm, -1, 1).cpu()
                sync()
                first[0] = (time.perf_counter(), k)
                raise _Stop()

        with torch.no_grad(), tts.mimi.streaming(1):
            sync()
            t0 = time.perf_counter()
            entries = [tts.prepare_script([text], padding_between=1)]
            try:
                tts.generate(entries, attrs, on_frame=on_frame, **gen_kwargs)
                raise RuntimeError("generation ended without a valid frame")
            except _Stop:
                pass
        t1, k = first[0]
        ttfa.append((t1 - t0) * 1000)
        steps_taken.append(k + 1 + max_delay)  # LM steps: frame k is returned by step k + max_delay (0-based)
    print(f"time to first audio (batch 1): median {statistics.median(ttfa):.1f} ms over 3 runs "
          f"({', '.join(f'{x:.1f}' for x in ttfa)} ms), {steps_taken[0]} LM steps "
          f"(first valid frame index {steps_taken[0] - 1 - max_delay}; depformer skipped in the first "
          f"{delay_steps})", flush=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
