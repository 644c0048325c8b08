"""Reference fixtures for the C++ Moshi language model (core/lm, tests/lm).

Run with the project's venv:
    NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 ~/.cache/monologue/venv/bin/python tests/reference/make_lm_fixtures.py

Tiny random-weight models shaped like each released family are built with the reference `LMModel` (fp32,
CPU, one thread, seeded), their weights are written in the released key naming (fused attention
`in_proj_weight` / `out_proj.weight`, see moshi-reference.md §2.4) with the architecture in a config.json,
and the reference `LMGen` is run step by step. Written to tests/data/lm/<family>/:
  model.safetensors   the weights (released naming)
  config.json         the config.json a released checkpoint would carry (LMModel kwargs + model_type)
  golden.safetensors  inputs, per-step text / depformer logits, LMGen outputs (-2 while delays fill), and
                      extra-head probabilities, as the reference computed them

Families:
  moshi  17 streams (text + 8 generated + 8 input audio), delays [0, 0, 1x7, 0, 1x7], depformer with one
         weight set per codebook, RoPE, context 16 (the ring KV cache wraps); a greedy run (B=2), a seeded
         sampled run (B=2, exponential race with top-k), and an exec-mask / mid-stream-reset run (B=3).
  stt    33 streams, dep_q 0, delays all 0, RoPE max_period 1e5, extra heads 4x6; greedy (B=2).
  tts    demultiplexed second text stream, LUT + tensor conditioners, fuser sum + cross with positional
         embedding, cross-attention, low-rank depformer embeddings, weight schedule, delays [0, 0, 2x7],
         two zero-token input streams; greedy (B=2) with text / audio hooks and one step with
         depformer_replace_tokens; and a CFG run (cfg_coef 1.5, B=1, null conditions = dropped).
"""
import json
import os
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from moshi.conditioners import ConditionAttributes, TensorCondition, dropout_all_conditions  # noqa: E402
from moshi.models import loaders  # noqa: E402
from moshi.models.lm import LMGen  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "lm"

COMMON = dict(
    hidden_scale=4.125, causal=True, layer_scale=None, max_period=10000, gating="silu",
    norm="rms_norm_f32", positional_embedding="rope", existing_text_padding_id=3,
    depformer_multi_linear=True, depformer_pos_emb="none", depformer_weights_per_step=True,
    depformer_gating="silu", depformer_max_period=10000,
)

MOSHI = dict(COMMON, dim=64, num_heads=4, num_layers=2, context=16, text_card=64, card=32, n_q=16, dep_q=8,
             delays=[0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1], depformer_dim=32,
             depformer_num_heads=2, depformer_num_layers=2, depformer_dim_feedforward=132, depformer_context=8)

STT = dict(COMMON, dim=64, num_heads=4, num_layers=2, context=12, max_period=100000, text_card=48, card=32,
           n_q=32, dep_q=0, delays=[0] * 33, depformer_dim=32, depformer_num_heads=2, depformer_num_layers=2,
           extra_heads_num_heads=4, extra_heads_dim=6)

TTS = dict(COMMON, dim=64, num_heads=4, num_layers=2, context=20, text_card=40, card=32, n_q=8, dep_q=6,
           delays=[0, 0] + [2] * 7, depformer_dim=32, depformer_num_heads=2, depformer_num_layers=2,
           depformer_dim_feedforward=48, depformer_low_rank_embeddings=8,
           depformer_weights_per_step_schedule=[0, 1, 2, 2, 3, 3], demux_second_stream=True,
           text_card_out=None, cross_attention=True,
           conditioners={
               "speaker_wavs": {"type": "tensor", "tensor": {"dim": 12}},
               "cfg": {"type": "lut", "lut": {"n_bins": 7, "dim": 4, "tokenizer": "noop",
                                              "possible_values": ["1.0", "1.5", "2.0", "2.5", "3.0",
                                                                  "3.5", "4.0"]}},
               "control": {"type": "lut", "lut": {"dim": 64, "n_bins": 1, "tokenizer": "noop",
                                                  "possible_values": ["ok"]}},
           },
           fuser={"cross_attention_pos_emb": True, "cross_attention_pos_emb_scale": 1, "sum": ["control", "cfg"],
                  "prepend": [], "cross": ["speaker_wavs"]})


def build(kwargs: dict, seed: int):
    torch.manual_seed(seed)
    # get_moshi_lm deep-copies nothing: give it a copy (it mutates the conditioner dicts).
    model = loaders.get_moshi_lm(None, lm_kwargs=json.loads(json.dumps(kwargs)), device="cpu",
                                 dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        # Norm gains and paddings are constant at init: make them random so the tests see them.
        for name, p in model.named_parameters():
            last = name.split(".")[-1]
            if last == "alpha" or (".norm" in name and last == "weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif ".norm" in name and last == "bias":
                p.copy_(0.1 * torch.randn_like(p))
    return model


def released_state(model) -> dict:
    """state_dict in the released naming: per-weight-set attention projections fused along dim 0."""
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    out = {}
    fused: dict[str, list] = {}
    for k, v in state.items():
        for part, target in (("in_projs", "in_proj_weight"), ("out_projs", "out_proj.weight")):
            marker = f".{part}."
            if marker in k:
                prefix, rest = k.split(marker)
                index = int(rest.split(".")[0])
                fused.setdefault(f"{prefix}.{target}", []).append((index, v))
                break
        else:
            out[k] = v
    for k, parts in fused.items():
        parts.sort(key=lambda x: x[0])
        out[k] = torch.cat([p for _, p in parts], dim=0).contiguous()
    return out


def write_model(family: str, kwargs: dict, model):
    folder = OUT / family
    folder.mkdir(parents=True, exist_ok=True)
    save_file(released_state(model), str(folder / "model.safetensors"))
    config = dict(kwargs)
    config["model_type"] = {"moshi": "moshi", "stt": "stt", "tts": "tts"}[family]
    with open(folder / "config.json", "w") as f:
        json.dump(config, f, indent=1)


class Recorder:
    """Captures per-step text logits (hook) and depformer logits (wrapping forward_depformer)."""

    def __init__(self, model):
        self.text = []
        self.audio = []
        self._cur = []
        original = model.forward_depformer

        def wrapped(cb_index, sequence, transformer_out):
            logits = original(cb_index, sequence, transformer_out)
            self._cur.append(logits.detach().clone())
            return logits

        model.forward_depformer = wrapped

    def text_logits_hook(self, logits):
        self.text.append(logits.detach().clone()[:, 0, 0].float())

    def end_step(self, dep_q: int, batch: int, card: int, cfg: bool = False):
        if dep_q:
            if self._cur:
                logits = torch.cat([x[:, 0, 0] for x in self._cur], dim=0)  # [dep_q * Bcfg, card]
                bcfg = self._cur[0].shape[0]
                logits = logits.view(dep_q, bcfg, card).transpose(0, 1)
                self.audio.append(logits.float())
            else:
                self.audio.append(torch.full((batch * (2 if cfg else 1), dep_q, card), float("nan")))
        self._cur = []


def run_gen(model, gen_kwargs: dict, batch: int, inputs, steps: int, *, exec_masks=None, resets=None,
            text_hook=None, audio_hook=None, replace=None, extra_heads=False, seed=None, cfg=False,
            condition_tensors=None):
    rec = Recorder(model)
    step_counter = [0]
    hooks = {}
    if text_hook is not None:
        hooks["on_text_hook"] = lambda t: text_hook(step_counter[0], t)
    if audio_hook is not None:
        hooks["on_audio_hook"] = lambda a: audio_hook(step_counter[0], a)
    gen = LMGen(model, on_text_logits_hook=rec.text_logits_hook, condition_tensors=condition_tensors,
                **gen_kwargs, **hooks)
    dep_q = model.dep_q
    outs, returned, heads = [], [], []
    with gen.streaming(batch), torch.no_grad():
        if seed is not None:
            torch.manual_seed(seed)
        for s in range(steps):
            step_counter[0] = s
            if resets is not None and s in resets:
                gen.reset_streaming(torch.tensor(resets[s]))
            if exec_masks is not None:
                gen.set_exec_mask(exec_masks[s])
            rep = None if replace is None else replace.get(s)
            if extra_heads:
                res = gen.step_with_extra_heads(inputs[s][:, :, None], depformer_replace_tokens=rep)
                if res is None:
                    out = None
                else:
                    out, hs = res
                    heads.append(torch.stack([h[:, 0].float() for h in hs], dim=0))
            else:
                out = gen.step(inputs[s][:, :, None], depformer_replace_tokens=rep)
            rec.end_step(dep_q, batch, model.card, cfg)
            returned.append(out is not None)
            outs.append(torch.full((batch, 1 + dep_q), -2, dtype=torch.long) if out is None else out[:, :, 0].clone())
    golden = {
        "inputs": torch.stack(inputs).contiguous(),
        "text_logits": torch.stack(rec.text).contiguous(),
        "tokens": torch.stack(outs).contiguous(),
        "returned": torch.tensor(returned, dtype=torch.uint8),
    }
    if dep_q:
        golden["audio_logits"] = torch.stack(rec.audio).contiguous()
    if extra_heads:
        golden["extra_heads"] = torch.stack(heads).contiguous()
    if exec_masks is not None:
        golden["exec_mask"] = torch.stack(exec_masks).to(torch.uint8).contiguous()
    return golden


def random_inputs(gen: torch.Generator, steps: int, batch: int, streams: int, card: int, zero_every: int = 0):
    xs = []
    for s in range(steps):
        x = torch.randint(0, card, (batch, streams), generator=gen)
        if zero_every and s % zero_every == zero_every - 1:
            x[0, :2] = -1  # "no input" tokens
        xs.append(x)
    return xs


def save_golden(family: str, name: str, tensors: dict, meta: dict | None = None):
    meta = {k: json.dumps(v) for k, v in (meta or {}).items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / family / f"{name}.safetensors"),
              metadata=meta)


def make_moshi():
    model = build(MOSHI, 1001)
    write_model("moshi", MOSHI, model)
    g = torch.Generator().manual_seed(11)
    n_in = model.n_q - model.dep_q
    steps = 110
    inputs = random_inputs(g, steps, 2, n_in, model.card, zero_every=17)
    greedy = dict(use_sampling=False, temp=0.0, temp_text=0.0)
    save_golden("moshi", "greedy", run_gen(model, greedy, 2, inputs, steps))

    sampled = dict(use_sampling=True, temp=0.8, temp_text=0.7, top_k=10, top_k_text=5)
    save_golden("moshi", "sampled", run_gen(model, sampled, 2, inputs[:40], 40, seed=4321),
                {"seed": 4321, **sampled})

    # Exec mask / reset: slot 1 joins at step 5, slot 2 is reset at step 30 and pauses at 40..42,
    # slot 0 pauses at step 50.
    steps = 64
    inputs3 = random_inputs(g, steps, 3, n_in, model.card)
    masks = []
    for s in range(steps):
        m = torch.ones(3, dtype=torch.bool)
        if s < 5:
            m[1] = False
        if 40 <= s <= 42:
            m[2] = False
        if s == 50:
            m[0] = False
        masks.append(m)
    resets = {30: [False, False, True]}
    gk = dict(greedy, support_out_of_sync=True)
    golden = run_gen(model, gk, 3, inputs3, steps, exec_masks=masks, resets=resets)
    golden["reset_mask"] = torch.tensor([[1 if (s in resets and resets[s][b]) else 0 for b in range(3)]
                                         for s in range(steps)], dtype=torch.uint8)
    save_golden("moshi", "exec_reset", golden)

    # CFG without conditions: null rows with their audio prefix masked (cfg_is_masked_until), and null rows
    # without text input (cfg_is_no_text).
    steps = 24
    inputs2 = random_inputs(g, steps, 2, n_in, model.card)
    for name, extra in (("cfg_masked", dict(cfg_coef=2.0, cfg_is_masked_until=[3, 6])),
                        ("cfg_no_text", dict(cfg_coef=1.5, cfg_is_no_text=True))):
        save_golden("moshi", name, run_gen(model, dict(greedy, **extra), 2, inputs2, steps, cfg=True), extra)


def make_stt():
    model = build(STT, 2002)
    write_model("stt", STT, model)
    g = torch.Generator().manual_seed(22)
    steps = 105
    inputs = random_inputs(g, steps, 2, model.n_q, model.card, zero_every=0)
    greedy = dict(use_sampling=False, temp=0.0, temp_text=0.0)
    save_golden("stt", "greedy", run_gen(model, greedy, 2, inputs, steps, extra_heads=True))


def tts_conditions(model, batch_values, speaker):
    attrs = []
    for b, (cfg_value, mask_len) in enumerate(batch_values):
        t = speaker[b:b + 1]
        mask = torch.zeros(1, t.shape[1], dtype=torch.bool)
        mask[:, :mask_len] = True
        attrs.append(ConditionAttributes(text={"cfg": cfg_value, "control": "ok"},
                                         tensor={"speaker_wavs": TensorCondition(t, mask)}))
    return attrs


def make_tts():
    model = build(TTS, 3003)
    write_model("tts", TTS, model)
    g = torch.Generator().manual_seed(33)
    steps = 104
    batch = 2
    n_in = model.n_q - model.dep_q
    inputs = [torch.full((batch, n_in), -1, dtype=torch.long) for _ in range(steps)]
    speaker = torch.randn(batch, 5, 12, generator=g)
    attrs = tts_conditions(model, [("2.0", 5), ("3.5", 3)], speaker)
    prepared = model.condition_provider.prepare(attrs)
    condition_tensors = model.condition_provider(prepared)
    n = model.text_card + 1

    def text_hook(s, t):
        for b in range(t.shape[0]):
            phase = (s + b) % 4
            if phase == 0:
                left, right = (7 * s + b) % model.text_card, (3 * s + 2 * b) % model.text_card
                t[b] = left + n * (right + 1)
            elif phase == 2:
                t[b] = 3

    def audio_hook(s, a):
        if s % 5 == 1:
            a[:, 0] = 5

    replace = {7: torch.arange(batch * model.dep_q).view(batch, model.dep_q, 1) % model.card}
    greedy = dict(use_sampling=False, temp=0.0, temp_text=0.0)
    golden = run_gen(model, greedy, batch, inputs, steps, text_hook=text_hook, audio_hook=audio_hook,
                     replace=replace, condition_tensors=condition_tensors)
    golden["speaker"] = speaker
    golden["speaker_mask"] = torch.tensor([[1] * 5, [1] * 3 + [0] * 2], dtype=torch.uint8)
    # The fused conditions, for checking the conditioners alone.
    golden["condition_sum"] = model.fuser.get_sum(condition_tensors)
    golden["condition_cross"] = model.fuser.get_cross(condition_tensors)
    save_golden("tts", "greedy", golden, {"cfg_values": ["2.0", "3.5"], "replace_step": 7})

    # CFG: conditional then null (all conditions dropped) rows.
    attrs1 = tts_conditions(model, [("1.5", 4)], speaker)
    null = dropout_all_conditions(attrs1)
    condition_tensors = model.condition_provider(model.condition_provider.prepare(attrs1 + null))
    steps = 30
    cfg_kwargs = dict(greedy, cfg_coef=1.5)
    golden = run_gen(model, cfg_kwargs, 1, [x[:1] for x in inputs[:steps]], steps,
                     condition_tensors=condition_tensors, cfg=True)
    golden["speaker"] = speaker[:1]
    golden["speaker_mask"] = torch.tensor([[1] * 4 + [0]], dtype=torch.uint8)
    save_golden("tts", "cfg", golden, {"cfg_values": ["1.5"], "cfg_coef": 1.5})

    # Fewer generated codebooks (the reference TTS's `lm.dep_q = n_q` for n_q < 32): the last two audio
    # streams become inputs, fed -1.
    model.dep_q = 4
    condition_tensors = model.condition_provider(prepared)
    steps = 30
    inputs = [torch.full((batch, model.n_q - model.dep_q), -1, dtype=torch.long) for _ in range(steps)]
    golden = run_gen(model, greedy, batch, inputs, steps, condition_tensors=condition_tensors)
    golden["speaker"] = speaker
    golden["speaker_mask"] = torch.tensor([[1] * 5, [1] * 3 + [0] * 2], dtype=torch.uint8)
    save_golden("tts", "depq4_greedy", golden, {"cfg_values": ["2.0", "3.5"], "dep_q": 4})
    model.dep_q = 6


def make_lora():
    """LoRA on the Moshi-like model (same base weights as moshi/model.safetensors): every Linear wrapped,
    rank 4, scaling 2; the LoRA tensors are written in the fused attention naming the reference load hook
    expects (`...self_attn.in_proj.lora_A.weight`), then fused like get_lora_moshi and run greedily."""
    from moshi.modules.lora import replace_all_linear_with_lora, replace_lora_with_linear
    model = build(MOSHI, 1001)
    replace_all_linear_with_lora(model, 4, 2.0, device="cpu")
    g = torch.Generator().manual_seed(44)
    lora = {}
    fused: dict[str, list] = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
                v = p.detach().clone()
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
    save_file(lora, str(OUT / "moshi" / "lora.safetensors"))
    replace_lora_with_linear(model)
    g = torch.Generator().manual_seed(45)
    steps = 30
    inputs = random_inputs(g, steps, 2, model.n_q - model.dep_q, model.card)
    greedy = dict(use_sampling=False, temp=0.0, temp_text=0.0)
    save_golden("moshi", "lora_greedy", run_gen(model, greedy, 2, inputs, steps), {"lora_scaling": 2.0})


def make_bf16():
    """The STT-like and TTS-like fixtures loaded in bfloat16 by the reference loader (floats cast to bf16,
    condition_provider kept fp32), greedy for 30 steps."""
    greedy = dict(use_sampling=False, temp=0.0, temp_text=0.0)
    steps = 30
    model = loaders.get_moshi_lm(str(OUT / "stt" / "model.safetensors"), lm_kwargs=json.loads(json.dumps(STT)),
                                 device="cpu", dtype=torch.bfloat16)
    g = torch.Generator().manual_seed(55)
    inputs = random_inputs(g, steps, 2, model.n_q, model.card)
    save_golden("stt", "bf16_greedy", run_gen(model, greedy, 2, inputs, steps, extra_heads=True))

    model = loaders.get_moshi_lm(str(OUT / "tts" / "model.safetensors"), lm_kwargs=json.loads(json.dumps(TTS)),
                                 device="cpu", dtype=torch.bfloat16)
    speaker = torch.randn(2, 5, 12, generator=g)
    attrs = tts_conditions(model, [("2.0", 5), ("3.5", 3)], speaker)
    condition_tensors = model.condition_provider(model.condition_provider.prepare(attrs))
    inputs = [torch.full((2, model.n_q - model.dep_q), -1, dtype=torch.long) for _ in range(steps)]
    golden = run_gen(model, greedy, 2, inputs, steps, condition_tensors=condition_tensors)
    golden["speaker"] = speaker
    golden["speaker_mask"] = torch.tensor([[1] * 5, [1] * 3 + [0] * 2], dtype=torch.uint8)
    save_golden("tts", "bf16_greedy", golden, {"cfg_values": ["2.0", "3.5"]})


def make_real_size():
    """One temporal layer at the released STT-1B dimensions (dim 2048, 16 heads of 128, SiLU FFN 5632,
    RoPE max_period 1e5, context 750, text_card 8000, 4 extra heads; n_q reduced to 4 to keep the
    embeddings small). Its ~100M weights are not written: they are the counter-based deterministic tensors
    of tests/reference/detinit.py, and the file stores per tensor "init:<name>" = "scale offset" and
    "shape:<name>", plus "seed" and "config"; the C++ test regenerates them."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from detinit import deterministic_tensor
    cfg = dict(COMMON, dim=2048, num_heads=16, num_layers=1, context=750, max_period=100000, text_card=8000,
               card=2048, n_q=4, dep_q=0, delays=[0] * 5, depformer_dim=1024, depformer_num_heads=16,
               depformer_num_layers=6, extra_heads_num_heads=4, extra_heads_dim=6)
    seed = 20250601
    model = loaders.get_moshi_lm(None, lm_kwargs=json.loads(json.dumps(cfg)), device="cpu", dtype=torch.float32)
    model.eval()
    shapes = {k: tuple(v.shape) for k, v in released_state(model).items()}
    state, meta = {}, {"seed": str(seed), "config": json.dumps(dict(cfg, model_type="stt"))}
    for name, shape in shapes.items():
        if name.endswith(".alpha"):
            scale, offset = 0.2, 1.0
        elif name.startswith("emb.") or name.startswith("text_emb."):
            scale, offset = 1.0, 0.0
        else:
            scale, offset = (3.0 / shape[1]) ** 0.5, 0.0
        state[name] = deterministic_tensor(seed, name, shape, scale, offset)
        meta[f"init:{name}"] = f"{scale!r} {offset!r}"
        meta[f"shape:{name}"] = ",".join(str(x) for x in shape)
    model.load_state_dict(state)
    g = torch.Generator().manual_seed(66)
    steps = 6
    inputs = random_inputs(g, steps, 2, model.n_q, model.card)
    greedy = dict(use_sampling=False, temp=0.0, temp_text=0.0)
    golden = run_gen(model, greedy, 2, inputs, steps, extra_heads=True)
    (OUT / "stt1b_layer").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in golden.items()}, str(OUT / "stt1b_layer" / "golden.safetensors"),
              metadata=meta)


def main():
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    make_moshi()
    make_stt()
    make_tts()
    make_lora()
    make_bf16()
    make_real_size()
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(ROOT)}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
