#!/usr/bin/env python3
"""Records what the reference `sentencepiece` package does with a tokenizer model, for
tests/text/tokenizer_test.cc: special ids, every piece, and for a set of texts the ids (encode, no
BOS/EOS, as moshi's `tokenizer.encode`), pieces, and `decode(ids)`. Also one generated-stream example
with the text the reference streaming printers (moshi/run_inference.py, moshi/server.py) would show:
ids in {0, 3} skipped, others `id_to_piece(id).replace("▁", " ")`, and the STT transcript decoding
(`decode(tokens[tokens > 3])`).

Usage: record_tokenizer_ids.py MODEL OUT.json
"""
import json
import sys

import sentencepiece

TEXTS = [
    "Hello, how are you doing today?",
    "The quick brown fox jumps over the lazy dog.",
    "Bonjour, comment allez-vous aujourd'hui ?",
    "Je préfère le thé au café, surtout le soir.",
    "Œuvre, cœur et sœur ; ça, à, é, è, ê, ï, ô, ù.",
    "Numbers 12, 345 and 2024 plus 3.14159!",
    "  leading and trailing spaces  ",
    "multiple   internal    spaces",
    "unseen words: zygote xylophone kumquat",
    "Unknown script: 日本語 and emoji 🙂 here",
    "NFKC: ﬁne ligature, full-width ＡＢＣ and ① circled",
    "tab\tand newline\nin text",
    "",
    "a",
    "Hello",
    "world",
]


def main() -> int:
    model_path, out_path = sys.argv[1], sys.argv[2]
    sp = sentencepiece.SentencePieceProcessor(model_file=model_path)
    texts = []
    for text in TEXTS:
        ids = sp.encode(text)
        texts.append({
            "text": text,
            "ids": ids,
            "pieces": sp.encode(text, out_type=str),
            "decoded": sp.decode(ids),
        })
    # A generated text stream as STT/Moshi produce it: PAD (3) while waiting, EPAD (0) before each word,
    # a trailing EOS (2).
    words = [sp.encode(w) for w in ["Bonjour", "tout", "le", "monde", "hello", "world"]]
    stream = [3, 3]
    for w in words:
        stream += [0] + w + [3]
    stream += [3, 2]
    printed = "".join(
        sp.id_to_piece(i).replace("\u2581", " ") for i in stream if i not in (0, 3))
    transcript = sp.decode([i for i in stream if i > 3])
    record = {
        "model": model_path.split("/")[-1],
        "sentencepiece_version": sentencepiece.__version__,
        "vocab_size": sp.vocab_size(),
        "unk_id": sp.unk_id(), "bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "pad_id": sp.pad_id(),
        "pieces": [sp.id_to_piece(i) for i in range(sp.vocab_size())],
        "texts": texts,
        "stream": {"ids": stream, "printed": printed, "transcript": transcript},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(record, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
