#!/usr/bin/env bash
# Trains the tiny English/French SentencePiece tokenizer used by the tests (tests/data/tokenizers/) and
# records, with the reference Python `sentencepiece` package, the ids/pieces/decodings the C++
# TextTokenizer must reproduce. Deterministic: same corpus and flags -> byte-identical .model.
#
# Special ids are laid out like the released Kyutai tokenizers (moshi-reference.md §2.6: 0 is the LM's
# end-of-padding id and <unk> in the vocabulary, 1 BOS, 2 EOS, 3 <pad> = existing_text_padding_id), so the
# model can stand in for tokenizer_en_fr_audio_8000.model in STT/TTS fixtures (with text_card = 400).
#
# Run from anywhere: bash tests/reference/make_tokenizer.sh
set -euo pipefail
cd "$(dirname "$0")"
PY="${MONOLOGUE_PYTHON:-$HOME/.cache/monologue/venv/bin/python}"
OUT=../data/tokenizers
NAME=tiny_en_fr_400
mkdir -p "$OUT"
# Relative paths on purpose: spm_train stores --input and --model_prefix inside the model.
spm_train --input=tokenizer/corpus_en_fr.txt --model_prefix="$NAME" --vocab_size=400 \
  --model_type=unigram --character_coverage=1.0 \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=3 \
  --num_threads=1 --random_seed=1234 >"$NAME.train.log" 2>&1 || { cat "$NAME.train.log"; exit 1; }
mv "$NAME.model" "$OUT/$NAME.model"
rm -f "$NAME.vocab" "$NAME.train.log"
"$PY" tokenizer/record_tokenizer_ids.py "$OUT/$NAME.model" "$OUT/${NAME}_expected.json"
ls -l "$OUT"
