#!/usr/bin/env python3
"""Writes tiny safetensors files with the reference `safetensors` package (tests/data/io/).

Every value follows a closed-form rule that tests/io/safetensors_test.cc recomputes, so the C++ reader is
checked against files from the reference writer without trusting either side's numbers:

  python_dtypes.safetensors   one [2, 3] tensor per dtype, named "<DTYPE>" (e.g. "BF16"), holding
                              Pattern(dtype) below; metadata {"format": "pt", "writer": "python"}.
  python_shapes.safetensors   "scalar" F32 0-d = 1.5; "empty" F32 [0, 4]; "vector" I64 [5] = 10*i - 7;
                              "weight" F32 [4, 8, 3] = 0.125 * (i - 40) (i = flat index); "bias" BF16 [96]
                              = 0.5 * (i % 17) - 4; no metadata.

Run: ~/.cache/monologue/venv/bin/python tests/reference/make_safetensors_fixtures.py
With --check FILE it instead verifies a file written by the C++ test (WriteSafeTensors) with the same
dtype patterns plus an "F8_E8M0"-free set, and prints OK: used once by hand to show Python can read it.
"""
import argparse
import os
import sys

import torch
from safetensors.torch import load_file, save_file, safe_open

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "io")

DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64, "F16": torch.float16,
    "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64, "C64": torch.complex64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


def pattern(name: str) -> torch.Tensor:
    """[2, 3]: i = 0..5. BOOL: i % 2 == 1; unsigned: 40*i + 3 (fits U8); signed ints: 37*i - 100
    (fits I8); floats: 0.25*i - 0.5 (exact everywhere, F8 included); C64: (0.25*i - 0.5) + i*1j."""
    i = torch.arange(6, dtype=torch.int64)
    dtype = DTYPES[name]
    if name == "BOOL":
        v = i % 2 == 1
    elif name.startswith("U"):
        v = (40 * i + 3).to(dtype)
    elif name.startswith("I"):
        v = (37 * i - 100).to(dtype)
    elif name == "C64":
        v = torch.complex(0.25 * i.float() - 0.5, i.float())
    else:
        v = (0.25 * i.double() - 0.5).to(dtype)
    return v.reshape(2, 3)


def shapes() -> dict:
    i = torch.arange
    return {
        "scalar": torch.tensor(1.5, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
        "vector": 10 * i(5, dtype=torch.int64) - 7,
        "weight": (0.125 * (i(96, dtype=torch.float32) - 40)).reshape(4, 8, 3),
        "bias": (0.5 * (i(96) % 17).float() - 4).to(torch.bfloat16),
    }


def check(path: str) -> int:
    tensors = load_file(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    bad = 0
    for name, t in tensors.items():
        if name in DTYPES:
            ok = t.dtype == DTYPES[name] and t.shape == (2, 3) and torch.equal(
                t.view(torch.uint8), pattern(name).view(torch.uint8))
        else:
            ok = True
        print(f"{name}: {t.dtype} {tuple(t.shape)} {'ok' if ok else 'MISMATCH'}")
        bad += not ok
    print("metadata:", meta)
    print("OK" if bad == 0 else f"{bad} mismatches")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check")
    args = ap.parse_args()
    if args.check:
        return check(args.check)
    os.makedirs(OUT, exist_ok=True)
    save_file({name: pattern(name) for name in DTYPES}, os.path.join(OUT, "python_dtypes.safetensors"),
              metadata={"format": "pt", "writer": "python"})
    save_file(shapes(), os.path.join(OUT, "python_shapes.safetensors"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
