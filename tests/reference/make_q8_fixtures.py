"""Reference fixtures for `quantize: true` LM checkpoints (kyutai/moshika-pytorch-q8, kyutai/moshiko-pytorch-q8).

Such a repo's config.json says `"quantize": true` and its `model.q8.safetensors` holds every Linear weight in
bitsandbytes' int8 form: `<weight>` int8 [out, in] and `<weight>_scb` float32 [out] (each row's absolute
maximum), the weight being int8 * scb / 127; embeddings and norms stay float. The reference builds `QLinear`s
for them (moshi/utils/quantize.py) and multiplies through `bnb.matmul`, which also rounds the activations to
int8 (LLM.int8 without outliers).

This script needs bitsandbytes besides the project's venv (its CPU build runs these ops):
    /root/.cache/monologue/venv/bin/pip install --no-deps --target /tmp/bnb bitsandbytes==0.50.2
    PYTHONPATH=/tmp/bnb NO_TORCH_COMPILE=1 NO_CUDA_GRAPH=1 \
        ~/.cache/monologue/venv/bin/python tests/reference/make_q8_fixtures.py

From the Moshi-like fixture model of make_lm_fixtures.py (same seed, so the same float weights as
tests/data/lm/moshi/model.safetensors) it writes to tests/data/lm/moshi_q8/:
  config.json          the Moshi-like config with "quantize": true and "moshi_name": "model.q8.safetensors"
  model.q8.safetensors the model quantised by the reference's own `replace_linear_with_qlinear`, saved in the
                       fused attention naming the released q8 files use (`in_proj_weight` + `in_proj_weight_scb`)
  dequantized_greedy.safetensors
                       a greedy run (B=2) of the reference LMModel whose Linear weights are the file's,
                       dequantised as bitsandbytes' int8_vectorwise_dequant does (int8 * scb * (1 / 127), f32):
                       the float model of exactly the stored weights, which monologue's f32 load must match
  q8_greedy.safetensors
                       the same inputs through the reference's own quantised model, loaded from the file by
                       loaders.get_moshi_lm (so the reference loads the file as written) and run through
                       bitsandbytes' int8 products
It prints how often the two reference runs agree on the greedy tokens: the rounding bitsandbytes adds to the
activations moves tokens by itself, which sets what monologue's int8 path can be held to against q8_greedy.

    make_q8_fixtures.py --check DIR
instead has the reference's loader read DIR's `quantize: true` checkpoint (a model directory with config.json,
e.g. one `monologue-make-model --config` wrote at Moshi 7B size) strictly, and counts its QLinear modules and
their dtypes: monologue's schema for such files against the reference's own, at any size (the meta device
keeps the memory to the file's mapping).
"""
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")
os.environ.setdefault("NO_CUDA_GRAPH", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_lm_fixtures as lmf  # noqa: E402
from moshi.models import loaders  # noqa: E402
from moshi.utils.quantize import QLinear, replace_linear_with_qlinear  # noqa: E402

FAMILY = "moshi_q8"
INV127 = 7.874015718698502e-3  # bitsandbytes' int8_vectorwise_dequant factor


def main():
    torch.set_num_threads(1)
    folder = lmf.OUT / FAMILY
    folder.mkdir(parents=True, exist_ok=True)

    # The reference's own quantisation of the Moshi-like float model.
    q8 = lmf.build(lmf.MOSHI, 1001)
    replace_linear_with_qlinear(q8)
    state = lmf.released_state(q8)
    assert any(k.endswith("in_proj_weight_scb") for k in state), "no quantised attention projection"
    q8_path = folder / "model.q8.safetensors"
    save_file(state, str(q8_path))
    config = dict(lmf.MOSHI, quantize=True, moshi_name="model.q8.safetensors", model_type="moshi")
    with open(folder / "config.json", "w") as f:
        json.dump(config, f, indent=1)

    # The float model of the stored weights: every QLinear's int8 values dequantised.
    deq = lmf.build(lmf.MOSHI, 1001)
    linears = {name: m for name, m in q8.named_modules() if isinstance(m, QLinear)}
    with torch.no_grad():
        for name, module in deq.named_modules():
            if name in linears:
                q = linears[name]
                module.weight.copy_(q.weight.float() * q.weight_scb.float().view(-1, 1) * INV127)
    print(f"{len(linears)} Linear modules quantised")

    g = torch.Generator().manual_seed(61)
    steps = 40
    inputs = lmf.random_inputs(g, steps, 2, deq.n_q - deq.dep_q, deq.card)
    greedy = dict(use_sampling=False, temp=0.0, temp_text=0.0)
    golden_deq = lmf.run_gen(deq, greedy, 2, inputs, steps)
    lmf.save_golden(FAMILY, "dequantized_greedy", golden_deq)

    # The reference loader reading the file as written, and its bitsandbytes products.
    lm_kwargs = {k: v for k, v in config.items() if k not in ("moshi_name", "model_type")}
    loaded = loaders.get_moshi_lm(str(q8_path), lm_kwargs=lm_kwargs, device="cpu", dtype=torch.float32)
    golden_q8 = lmf.run_gen(loaded, greedy, 2, inputs, steps)
    lmf.save_golden(FAMILY, "q8_greedy", golden_q8)

    valid = golden_deq["tokens"].ge(0)
    same = (golden_deq["tokens"] == golden_q8["tokens"]) & valid
    text_err = ((golden_q8["text_logits"] - golden_deq["text_logits"]).abs().max()
                / golden_deq["text_logits"].abs().max()).item()
    print(f"reference q8 vs its dequantised float model: {int(same.sum())} of {int(valid.sum())} greedy tokens "
          f"equal; text logits differ by {text_err:.3e} of their largest value")
    for p in sorted(folder.iterdir()):
        print(f"{p.relative_to(lmf.ROOT)}: {p.stat().st_size} bytes")


def check(folder: str):
    config = json.loads((Path(folder) / "config.json").read_text())
    non_arch = ("moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name", "lora_name", "model_type",
                "lm_gen_config", "tts_config", "stt_config", "model_id")
    lm_kwargs = {k: v for k, v in config.items() if k not in non_arch}
    model = loaders.get_moshi_lm(str(Path(folder) / config["moshi_name"]), lm_kwargs=lm_kwargs, device="cpu",
                                 dtype=torch.bfloat16)  # strict load_state_dict: every key and shape
    quantised = [(n, m) for n, m in model.named_modules() if isinstance(m, QLinear)]
    wrong = [n for n, m in quantised if m.weight.dtype != torch.int8 or not m.weight_scb.dtype.is_floating_point]
    plain = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    elements = sum(t.numel() for t in model.state_dict().values())
    print(f"the reference loaded {folder}: {len(quantised)} QLinear modules, {len(wrong)} with other dtypes, "
          f"{len(plain)} plain Linear modules, {elements} elements")
    if wrong or plain:
        sys.exit(f"not the reference's q8 layout: {wrong[:5]} {plain[:5]}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--check"]:
        check(sys.argv[2])
    else:
        main()
