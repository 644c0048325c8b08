"""Reference fixtures for the DSM text-to-speech engine (tests/tts).

Run with the project's venv, after building `monologue-make-model`, from the repository root:
    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python tests/reference/make_tts_fixtures.py \
        --make-model build/monologue-make-model [--self-check]
(--skip-models reuses the model directories and voices already written; --only CASE... runs some cases;
--out DIR writes elsewhere.) Made with moshi 0.2.13, torch 2.11 CPU, fp32, torch.set_num_threads(1), following
the DSM repository's scripts/tts_pytorch.py (HEAD of November 2026). About 20 s; re-running reproduces every
file byte for byte (checked: models and ref_*.safetensors have the same sha1 on a second run).

Writes tests/data/tts/:
  tiny-tts/         `monologue-make-model --preset tiny-tts --dtype f32 --seed 0 --tokenizer
                    tests/data/tokenizers/tiny_en_fr_400.model`: CFG-distilled style (LUT conditioners `cfg`
                    "1.0".."4.0" and `control` summed, `speaker_wavs` dim 16 through cross-attention), demuxed
                    second text stream, text_card 400 (TokenIds.card 401), tts_config audio_delay 1.28 s ->
                    delay_steps 16, second_stream_ahead 2, n_q = dep_q = 8, delays [0, 0, 2x7], context 64 (every
                    case over 64 steps wraps the KV ring), model_id 0000tiny@0. Then text_linear row 0 (new word)
                    of model.safetensors is multiplied by 3 (TEXT_ROW_SCALE; row 3, pad, is left alone: scaling it
                    by 3 as well gave the same runs without padding_bonus). Unscaled, the random model never samples 0, so every word
                    takes exactly max_padding + 1 = 9 steps and padding_bonus has no effect; scaled, words take
                    2-9 steps (model-chosen new words) and padding_bonus 5 delays some of them.
  tiny-tts-nocfg/   config.json + model.safetensors: the same architecture NOT CFG-distilled (no `cfg`
                    conditioner, fuser sum ["control"]), `monologue-make-model --config <that config> --dtype bf16
                    --seed 0 --no-mimi` (bf16 on disk like the released checkpoints and half the size; the
                    reference loads it into fp32), same row-0 scaling done in bf16. mimi_name, mimi_config_name
                    and tokenizer_name point to ../tiny-tts/. Every tensor holds tiny-tts's value of the same
                    name rounded to bf16 (the condition_provider tensors are f32 in both files), except row 0 of
                    text_linear (scaled after the rounding, so it differs by one bf16 rounding).
  voices/           alice|bob|carol.0000tiny@0.safetensors (TTSModel.voice_suffix of the config's model_id):
                    one tensor `speaker_wavs` f32 [1, 16, 125], torch.randn with Generator().manual_seed(7|8|9),
                    no metadata; broken.0000tiny@0.safetensors: `speaker_wavs` f32 [1, 8, 125] (seed 99), which
                    the reference accepts in make_condition_attributes and fails on in the speaker conditioner's
                    projection (message in script_cases.json "errors").
  ref_<case>.safetensors (S = steps run by generate(), F = S - max_delay 2 - delay_steps 16; batch cases
                    have a leading B):
      text_fed      int64 [S]: the value fed as text at each step = the state machine's output, multiplexed
                    (second + 1) * 401 + main (logged_text_tokens[b][s][1]);
      text_sampled  int64 [S]: the model's own sampled text token at that step (logged_text_tokens[b][s][0]);
      codes         int64 [Q=8, F]: frame[:, 1:, 0] of each frame of result.frames[delay_steps:];
      pcm           f32 [pcm_frames * 1920]: those frames decoded one at a time in mimi.streaming(B), clipped to
                    [-1, 1], concatenated; all F frames for single_greedy (no cut at end_step: tts_pytorch.py
                    writes everything), the first PCM_FRAMES = 12 frames for the other cases (size);
      text_margin   f32 [S] (greedy cases only): top-1 minus top-2 of the text logits (after padding_bonus)
                    between the three classes the state machine tells apart: 0, 3 and any other token;
      audio_margin  f32 [S, 8] (greedy only): top-1 minus top-2 depformer logit at step s for codebook q (before
                    the delay correction); NaN for s < delay_steps, where generate() skips the depformer.
  ref_<case>.json   case, model, batch, voices (file names; every item gets the same list), voices_per_item,
                    temp, top_k, top_k_text, seed, seed_where, cfg_coef, cfg_mode, padding_between, padding_bonus,
                    n_q, delay_steps, max_delay, final_padding, initial_padding, max_padding, second_stream_ahead,
                    card, steps, frames (len(result.frames) = S - 2), decoded_frames (F), samples (F * 1920),
                    pcm_frames, pcm_samples, greedy_min_margin {text_class, audio} (null when sampled), and per
                    item: script (the turns), entries [{tokens, text, padding}] (prepare_script's output: the
                    tokenizer ids of every word, speaker token included), end_step, consumption_times (one per
                    entry, breaks included), transcript [[word, step]]. Batch cases put the per-item keys in
                    "items": [...]; batch 1 cases have them at top level.
  script_cases.json {frame_rate, card, voice_suffix, cases: [{script, multi_speaker, padding_between, entries}]
                    (script_to_entries on 15 scripts x multi_speaker on/off x padding_between 0/1/2), errors:
                    {name: "Type: message" or "no error..."} for bad inputs}.

Cases (tiny-tts, batch 1, padding_between 1, cfg 2.0 as the `cfg` condition, padding_bonus 0, greedy unless said):
  single_greedy        EN (14 words), voice alice.
  dialogue_greedy      3 turns (main, other, main), voices [bob, carol] (slots 0 and 1).
  break_greedy         `It’s time: wait <break time="0.5s"/> (really) now.` (’ : ( ) normalised), voice carol.
  long_greedy          a 54-word text, voice bob: 254 steps.
  single_sampled       as single_greedy with temp 0.6, top-k 250 audio / 25 text (LMGen defaults), and
                       torch.manual_seed(1234) right before generate() (after prepare_script and
                       make_condition_attributes).
  nocfg_cfg2_greedy    tiny-tts-nocfg, EN, voice carol, TTSModel.cfg_coef = 2.0 (real CFG: null conditions
                       appended, LMGen doubles the batch, cfg_is_no_text=True), make_condition_attributes(cfg=None).
  padding_bonus_greedy as single_greedy with padding_bonus 5.0 (1.5 and 3 never tip a decision here).
  french_greedy        a French sentence, voice carol.
  batch3_greedy        3 texts of 2, 14 and 7 words in one generate() call, voice alice for each.
Voices were picked so that the smallest greedy audio margin of each case is at least 1.8e-4 (with other voices
batch3 had a 6.7e-6 margin).

Every case runs the reference as tts_pytorch.py does: TTSModel.from_checkpoint_info(info, n_q=8, temp=T,
device='cpu', dtype=torch.float32 [, cfg_coef=, padding_bonus=]), prepare_script(script, padding_between=1),
make_condition_attributes(voice_paths, cfg_coef=C), generate([entries, ...], [attributes, ...]), then
result.frames[delay_steps:] decoded one frame at a time through mimi.streaming(B). n_q must be given:
the TTSModel default 32 is above the tiny model's 8 and from_checkpoint_info raises.

Self-consistency of the reference (--self-check, CPU fp32): single_greedy and single_sampled rerun in the same
process with 1 thread, and again with torch.set_num_threads(2): text_fed, text_sampled and codes identical and
pcm bit-identical (max |diff| 0) in all four comparisons. Also checked once by hand: each item of batch3_greedy
run alone (batch 1) gives exactly the batch's text_fed and codes over its own length.

Reference behaviour the fixtures pin down (seen in these runs / in moshi/models/tts.py and lm.py):
- The tiny tokenizer maps unknown pieces to id 0 = the new-word id ("First" -> [4, 0, 138, 169], "Very");
  script_to_entries keeps them inside the word's tokens and they are fed like any other token.
- A turn's first word gets the speaker token (1 main / 2 other by turn parity) only when the speaker changed, and it
  counts in padding = padding_between + len(tokens) - 1. An empty turn adds nothing, so in ["One.", "", "Still"]
  "Still" gets no speaker token. Breaks: padding = Python round(seconds * 12.5), i.e. half to even (0.2 s -> 2,
  0.6 s -> 8); the regex's unescaped "." makes time="1x5s" raise ValueError; time="2" (no "s") is not a break and
  stays as words.
- State machine with the second stream: the new-word step feeds (0 + 1) * 401 + first token of the word (the
  speaker token for a turn's first word), so text_fed starts 3, 3, 402 (initial_padding 2). A break entry is
  consumed like a word (consumption_times) but fed as pad and decrements its own forced padding on that step.
  When a word is asked for and none is left, the first such step still feeds the new-word marker on the second
  stream (401 + 3 = 404) and sets end_step; generate() then runs until step max(end_step) + 16 + 4, so
  steps = end_step + 20 (batch: max end_step + 20; finished items keep generating pads).
- The depformer's first input is the fed (multiplexed, overridden) text value, not the sampled one.
- Sampling (single_sampled): the text token is drawn at every step, also when the state machine overrides it
  and during the first 16 steps; depformer draws start at step 16 (generate() passes depformer_replace_tokens
  before). Top-k uses torch.topk (sorted) then the exponential race (q = probs / Exp(1), argmax), with
  k = min(250, 64) = 64 for audio and 25 for text, temp 0.6 for both (config lm_gen_config is not used).
- Real CFG: text comes from the conditional half's logits only (cfg_is_no_text); the null half gets zero text
  input (except at step 0, the initial token) and dropped conditions; the depformer mixes
  null + (cond - null) * 2.0 with both halves fed the same text token.
- padding_bonus is added to the pad logit before sampling; tokens other than 0 and 3 count as pad, so it
  only matters where pad would beat the new-word token.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import moshi.models.lm as lm_module  # noqa: E402
from moshi.models import loaders  # noqa: E402
from moshi.models.tts import TTSModel, script_to_entries  # noqa: E402
from moshi.utils.sampling import sample_token  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "tts"
TOKENIZER = ROOT / "tests" / "data" / "tokenizers" / "tiny_en_fr_400.model"

TEXT_ROW_SCALE = {0: 3.0}  # text_linear row 0 (new word) -> factor; row 3 (pad) is left as written
PCM_FRAMES = 12  # decoded frames kept in `pcm` (all of them for FULL_PCM_CASES)
FULL_PCM_CASES = {"single_greedy"}
VOICE_NAMES = ["alice", "bob", "carol"]

EN = "Hello there, this is a short test of the tiny speech synthesis model today."
CASES = [
    dict(name="single_greedy", scripts=[[EN]], voices=["alice"], temp=0.0),
    dict(name="dialogue_greedy", voices=["bob", "carol"], temp=0.0,
         scripts=[["Good morning, how are you?", "Very well, thank you.", "Great, let us start."]]),
    dict(name="break_greedy", voices=["carol"], temp=0.0,
         scripts=[["It’s time: wait <break time=\"0.5s\"/> (really) now."]]),
    dict(name="long_greedy", voices=["bob"], temp=0.0,
         scripts=[["Once upon a time, in a quiet little village by the sea, there lived an old fisherman who "
                   "went out every morning before sunrise and came back every evening with stories about "
                   "the waves, the wind and the birds. His children loved to listen to him after dinner, sitting "
                   "close to the warm fire."]]),
    dict(name="single_sampled", scripts=[[EN]], voices=["alice"], temp=0.6, seed=1234),
    dict(name="nocfg_cfg2_greedy", model="tiny-tts-nocfg", scripts=[[EN]], voices=["carol"], temp=0.0,
         cfg=2.0, real_cfg=True),
    dict(name="padding_bonus_greedy", scripts=[[EN]], voices=["alice"], temp=0.0, padding_bonus=5.0),
    dict(name="french_greedy", voices=["carol"], temp=0.0,
         scripts=[["Bonjour à tous, il fait très beau aujourd'hui à Paris."]]),
    dict(name="batch3_greedy", voices=["alice"], temp=0.0,
         scripts=[["Short one."], [EN], ["A middle sized sentence for the batch."]]),
]
DEFAULTS = dict(model="tiny-tts", seed=None, cfg=2.0, real_cfg=False, padding_between=1, padding_bonus=0.0)


def checkpoint_info(d: Path) -> loaders.CheckpointInfo:
    raw = json.loads((d / "config.json").read_text())
    return loaders.CheckpointInfo.from_hf_repo(
        "local/unused", moshi_weights=d / raw["moshi_name"], mimi_weights=d / raw["mimi_name"],
        tokenizer=d / raw["tokenizer_name"], config_path=d / "config.json",
        mimi_config_path=d / raw["mimi_config_name"])


def scale_rows(weights_path: Path):
    weights = load_file(str(weights_path))
    w = weights["text_linear.weight"].clone()
    for row, factor in TEXT_ROW_SCALE.items():
        w[row] = (w[row].float() * factor).to(w.dtype)
    weights["text_linear.weight"] = w
    save_file(weights, str(weights_path))


def make_models(make_model_bin: Path, out: Path):
    tiny = out / "tiny-tts"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(make_model_bin), "--preset", "tiny-tts", "--dtype", "f32", "--seed", "0",
                        "--tokenizer", str(TOKENIZER), "--out", tmp], check=True, stdout=subprocess.DEVNULL)
        if tiny.exists():
            shutil.rmtree(tiny)
        shutil.copytree(tmp, tiny)
    tiny.chmod(0o755)
    scale_rows(tiny / "model.safetensors")

    cfg = json.loads((tiny / "config.json").read_text())
    cfg["conditioners"] = {k: v for k, v in cfg["conditioners"].items() if k != "cfg"}
    cfg["fuser"]["sum"] = ["control"]
    nocfg = out / "tiny-tts-nocfg"
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        shutil.copy(tiny / cfg["mimi_config_name"], Path(tmp) / cfg["mimi_config_name"])
        gen = Path(tmp) / "gen"
        subprocess.run([str(make_model_bin), "--config", str(cfg_path), "--dtype", "bf16", "--seed", "0",
                        "--no-mimi", "--out", str(gen)], check=True, stdout=subprocess.DEVNULL)
        if nocfg.exists():
            shutil.rmtree(nocfg)
        nocfg.mkdir()
        written = json.loads((gen / "config.json").read_text())
        shutil.copy(gen / written["moshi_name"], nocfg / "model.safetensors")
    written["moshi_name"] = "model.safetensors"
    for key in ("mimi_name", "mimi_config_name", "tokenizer_name"):
        written[key] = f"../tiny-tts/{cfg[key]}"
    (nocfg / "config.json").write_text(json.dumps(written, indent=2) + "\n")
    scale_rows(nocfg / "model.safetensors")


def make_voices(out: Path):
    cfg = json.loads((out / "tiny-tts" / "config.json").read_text())
    dim = cfg["conditioners"]["speaker_wavs"]["tensor"]["dim"]
    suffix = f".{cfg['model_id']['sig']}@{cfg['model_id']['epoch']}.safetensors"
    vdir = out / "voices"
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.mkdir()
    for i, name in enumerate(VOICE_NAMES):
        t = torch.randn(1, dim, 125, generator=torch.Generator().manual_seed(7 + i))
        save_file({"speaker_wavs": t}, str(vdir / f"{name}{suffix}"))
    bad = torch.randn(1, dim // 2, 125, generator=torch.Generator().manual_seed(99))
    save_file({"speaker_wavs": bad}, str(vdir / f"broken{suffix}"))


def load_tts(model_dir: Path, **kwargs) -> TTSModel:
    info = checkpoint_info(model_dir)
    n_q = int(info.raw_config["n_q"])
    return TTSModel.from_checkpoint_info(info, n_q=n_q, device="cpu", dtype=torch.float32, **kwargs)


def run_case(case: dict, out: Path) -> tuple[dict, dict]:
    case = {**DEFAULTS, **case}
    kwargs = dict(temp=case["temp"], padding_bonus=case["padding_bonus"])
    if case["real_cfg"]:
        kwargs["cfg_coef"] = case["cfg"]
    tts = load_tts(out / case["model"], **kwargs)
    vdir = out / "voices"
    voice_paths = [vdir / f"{v}{tts.voice_suffix}" for v in case["voices"]]
    all_entries = [tts.prepare_script(script, padding_between=case["padding_between"])
                   for script in case["scripts"]]
    cond_cfg = None if case["real_cfg"] else case["cfg"]
    attributes = [tts.make_condition_attributes(voice_paths, cfg_coef=cond_cfg) for _ in all_entries]
    margins = {"text": [], "audio": []}
    text_card = tts.lm.text_card

    def recording_sample_token(logits, use_sampling=False, temp=1.0, top_k=0, top_p=0.0):
        if not (use_sampling and temp > 0.0):
            if logits.shape[-1] == text_card:
                # The state machine only sees the class of the argmax: new word (0), pad (3) or other.
                classes = torch.stack([logits[..., 0], logits[..., 3],
                                       torch.cat([logits[..., 1:3], logits[..., 4:]], -1).amax(-1)], -1)
                top = classes.topk(2, dim=-1).values
                margins["text"].append((top[..., 0] - top[..., 1]).reshape(-1))
            else:
                top = logits.topk(2, dim=-1).values
                margins["audio"].append((top[..., 0] - top[..., 1]).reshape(-1))
        return sample_token(logits, use_sampling, temp, top_k, top_p)

    lm_module.sample_token = recording_sample_token
    try:
        if case["seed"] is not None:
            torch.manual_seed(case["seed"])
        result = tts.generate(all_entries, attributes)
    finally:
        lm_module.sample_token = sample_token
    B = len(all_entries)
    frames = result.frames[tts.delay_steps:]
    pcms = []
    with tts.mimi.streaming(B), torch.no_grad():
        for frame in frames:
            pcms.append(torch.clip(tts.mimi.decode(frame[:, 1:, :]), -1, 1)[:, 0])
    pcm = torch.cat(pcms, dim=-1).float()
    codes = torch.stack([f[:, 1:, 0] for f in frames], dim=-1)  # [B, Q, F]
    text_sampled = torch.tensor([[s for s, _ in logged] for logged in result.logged_text_tokens], dtype=torch.int64)
    text_fed = torch.tensor([[f for _, f in logged] for logged in result.logged_text_tokens], dtype=torch.int64)
    tensors = {"text_fed": text_fed, "text_sampled": text_sampled, "codes": codes, "pcm": pcm}
    if case["temp"] == 0:
        # Greedy decision margins (top-1 minus top-2 logit; for text between the classes the state machine
        # distinguishes), per item: text [B, S]; audio [B, S, Q] at generate step s, codebook q (before the
        # delay correction), NaN for the steps where generate() skips the depformer.
        steps_run = len(result.logged_text_tokens[0])
        tensors["text_margin"] = torch.stack(margins["text"], dim=-1).float()
        audio = torch.full((B, steps_run, tts.lm.dep_q), float("nan"))
        audio[:, tts.delay_steps:] = torch.stack(margins["audio"], -1).view(B, -1, tts.lm.dep_q).float()
        tensors["audio_margin"] = audio
    pcm_frames = len(frames) if case["name"] in FULL_PCM_CASES else min(PCM_FRAMES, len(frames))
    tensors["pcm"] = pcm[:, :pcm_frames * (pcm.shape[-1] // len(frames))].contiguous()
    if B == 1:
        tensors = {k: v[0].contiguous() for k, v in tensors.items()}
    steps = len(result.logged_text_tokens[0])
    assert all((f[:, 1:] >= 0).all() for f in frames), "a decoded frame holds -1"
    items = []
    for b in range(B):
        items.append({
            "script": case["scripts"][b],
            "entries": [{"tokens": e.tokens, "text": e.text, "padding": e.padding} for e in all_entries[b]],
            "end_step": result.end_steps[b],
            "consumption_times": result.all_consumption_times[b],
            "transcript": [[w, s] for w, s in result.all_transcripts[b]],
        })
    meta = {
        "case": case["name"],
        "model": case["model"],
        "batch": B,
        "voices": [p.name for p in voice_paths],
        "voices_per_item": "every item gets the same voice list (make_condition_attributes once per item)",
        "temp": case["temp"],
        "top_k": 250, "top_k_text": 25,  # LMGen defaults (generate() passes neither); unused when temp is 0
        "seed": case["seed"],
        "seed_where": (None if case["seed"] is None else
                       "torch.manual_seed(seed) right before TTSModel.generate(), after prepare_script and "
                       "make_condition_attributes (the global CPU generator; the first draw is step 0's text "
                       "sample)"),
        "cfg_coef": case["cfg"],
        "cfg_mode": ("real: TTSModel.cfg_coef = LMGen.cfg_coef, null conditions appended, cfg_is_no_text=True, "
                     "cfg condition None" if case["real_cfg"] else
                     "condition: cfg LUT value format(cfg, '.1f'), LMGen.cfg_coef = 1"),
        "padding_between": case["padding_between"],
        "padding_bonus": case["padding_bonus"],
        "n_q": tts.n_q,
        "delay_steps": tts.delay_steps,
        "max_delay": max(tts.lm.delays),
        "final_padding": tts.final_padding,
        "initial_padding": tts.machine.initial_padding,
        "max_padding": tts.machine.max_padding,
        "second_stream_ahead": tts.machine.second_stream_ahead,
        "card": tts.machine.token_ids.card,
        "steps": steps,
        "frames": len(result.frames),
        "decoded_frames": len(frames),
        "samples": int(pcm.shape[-1]),
        "pcm_frames": pcm_frames,
        "pcm_samples": int(tensors["pcm"].shape[-1]),
        "greedy_min_margin": ({"text_class": float(tensors["text_margin"].min()),
                               "audio": float(tensors["audio_margin"].nan_to_num(float("inf")).min())}
                              if case["temp"] == 0 else None),
        "items": items,
    }
    if B == 1:
        meta.update({k: v for k, v in items[0].items()})
        del meta["items"]
    return meta, tensors


def script_cases(out: Path) -> dict:
    tts = load_tts(out / "tiny-tts", temp=0.0)
    cases = []
    scripts = [
        ["Hello world"],
        ["  Hello   world  "],
        ["It’s 5:30 (roughly)."],
        ["Wait<break time=\"1.5s\"/>go"],
        ["<break time=\"2s\"/> starts with a break"],
        ["a <break time=\"0.25s\" /> b <break time=\"3s\"> c"],
        ["First turn.", "Second turn here.", "Back to one."],
        ["", "Other speaker starts."],
        ["One.", "", "Still speaker one?"],
        ["Un café, s'il vous plaît !"],
        ["x"],
        ["tab\tand\nnewline"],
        ["end with a pause <break time=\"1s\"/>"],
        ["two <break time=\"0.5s\"/><break time=\"0.5s\"/> breaks"],
        ["no unit <break time=\"2\"/> here"],
        ["half <break time=\"0.2s\"/> even <break time=\"0.6s\"/> rounding <break time=\"1.\"/>"],
    ]
    for script in scripts:
        for multi in (True, False):
            for pb in (0, 1, 2):
                entries = script_to_entries(tts.tokenizer, tts.machine.token_ids, tts.mimi.frame_rate, script,
                                            multi_speaker=multi, padding_between=pb)
                cases.append({"script": script, "multi_speaker": multi, "padding_between": pb,
                              "entries": [{"tokens": e.tokens, "text": e.text, "padding": e.padding}
                                          for e in entries]})
    errors = {}
    try:
        script_to_entries(tts.tokenizer, tts.machine.token_ids, tts.mimi.frame_rate,
                          ["bad <break time=\"1x5s\"/> value"], padding_between=1)
        errors["break_time_1x5"] = "no error"
    except Exception as exc:  # noqa: BLE001
        errors["break_time_1x5"] = f"{type(exc).__name__}: {exc}"
    broken = out / "voices" / f"broken{tts.voice_suffix}"
    try:
        attrs = tts.make_condition_attributes([broken], cfg_coef=2.0)
        tts.lm.condition_provider.prepare_and_provide([attrs])
        errors["broken_voice"] = "no error"
    except Exception as exc:  # noqa: BLE001
        errors["broken_voice"] = f"{type(exc).__name__}: {exc}"
    try:
        tts.make_condition_attributes([out / "voices" / f"alice{tts.voice_suffix}"], cfg_coef=2.2)
        errors["cfg_2.2"] = "no error"
    except Exception as exc:  # noqa: BLE001
        errors["cfg_2.2"] = f"{type(exc).__name__}: {exc}"
    def attempt(key, fn):
        try:
            fn()
            errors[key] = "no error"
        except Exception as exc:  # noqa: BLE001
            errors[key] = f"{type(exc).__name__}: {exc}"

    alice = out / "voices" / f"alice{tts.voice_suffix}"
    attempt("default_n_q_32", lambda: TTSModel.from_checkpoint_info(
        checkpoint_info(out / "tiny-tts"), device="cpu", dtype=torch.float32))
    attempt("distilled_model_with_real_cfg", lambda: load_tts(out / "tiny-tts", cfg_coef=2.0).generate(
        [tts.prepare_script(["Hi."])], [tts.make_condition_attributes([alice], cfg_coef=2.0)]))
    nocfg = load_tts(out / "tiny-tts-nocfg")
    attempt("nocfg_model_cfg_condition_2.0", lambda: nocfg.make_condition_attributes([alice], cfg_coef=2.0))
    attempt("voice_not_safetensors", lambda: tts.make_condition_attributes([alice.with_suffix(".wav")]))
    six = tts.make_condition_attributes([alice] * 6, cfg_coef=2.0)
    errors["six_voices"] = (f"no error: speaker_wavs {list(six.tensor['speaker_wavs'].tensor.shape)}, "
                            f"{int(six.tensor['speaker_wavs'].mask.sum())} mask entries set (voices past the "
                            f"5th are dropped silently)")
    errors = {k: v.replace(str(ROOT) + "/", "") for k, v in errors.items()}
    return {"frame_rate": tts.mimi.frame_rate, "card": tts.machine.token_ids.card,
            "voice_suffix": tts.voice_suffix, "cases": cases, "errors": errors}


def compare(a: dict, b: dict) -> str:
    parts = []
    for k in ("text_fed", "text_sampled", "codes"):
        parts.append(f"{k} {'equal' if torch.equal(a[k], b[k]) else 'DIFFER'}")
    if a["pcm"].shape == b["pcm"].shape:
        parts.append(f"pcm max|diff| {float((a['pcm'] - b['pcm']).abs().max()):.3g}")
    else:
        parts.append(f"pcm shapes {tuple(a['pcm'].shape)} vs {tuple(b['pcm'].shape)}")
    return ", ".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-model", type=Path, help="the monologue-make-model binary")
    ap.add_argument("--skip-models", action="store_true", help="reuse the model directories and voices")
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--only", nargs="*", help="run only these cases")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not args.skip_models:
        assert args.make_model, "--make-model is required unless --skip-models"
        make_models(args.make_model, out)
        make_voices(out)
    results = {}
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        meta, tensors = run_case(case, out)
        results[case["name"]] = tensors
        save_file(tensors, str(out / f"ref_{case['name']}.safetensors"))
        (out / f"ref_{case['name']}.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
        ends = meta.get("end_step", [i["end_step"] for i in meta.get("items", [])])
        print(f"{case['name']}: {meta['steps']} steps, end_step {ends}, {meta['samples']} samples, "
              f"fed {tensors['text_fed'].flatten()[:40].tolist()}")
    if not args.only:
        sc = script_cases(out)
        (out / "script_cases.json").write_text(json.dumps(sc, indent=1, ensure_ascii=False) + "\n")
        print(f"script cases: {len(sc['cases'])}, errors {sc['errors']}")
    if args.self_check:
        for name in ("single_greedy", "single_sampled"):
            case = next(c for c in CASES if c["name"] == name)
            first = results.get(name) or run_case(case, out)[1]
            again = run_case(case, out)[1]
            print(f"self-check {name} rerun (1 thread): {compare(first, again)}")
            torch.set_num_threads(2)
            two = run_case(case, out)[1]
            torch.set_num_threads(1)
            print(f"self-check {name} 2 threads vs 1: {compare(first, two)}")


if __name__ == "__main__":
    sys.exit(main())
