"""Counter-based pseudo-random tensors, bit-identical to core/model/deterministic_weights.cc.

Element i of tensor `name` = offset + scale * u, u = (top 24 bits of splitmix64(seed ^ fnv1a64(name) +
(i + 1) * golden) - 2**23) / 2**23, all float32. Real-size fixtures store only the (scale, offset) rule per
tensor; the C++ tests regenerate the weights.
"""
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M = (1 << 64) - 1


def fnv1a64(text: str) -> int:
    h = 0xCBF29CE484222325
    for c in text.encode("utf-8"):
        h ^= c
        h = (h * 0x100000001B3) & _M
    return h


def deterministic_uniform(seed: int, name: str, count: int) -> np.ndarray:
    base = np.uint64((seed ^ fnv1a64(name)) & _M)
    with np.errstate(over="ignore"):
        z = base + (np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    ints = (z >> np.uint64(40)).astype(np.int64) - (1 << 23)
    return ints.astype(np.float32) * np.float32(1.0 / (1 << 23))


def deterministic_tensor(seed: int, name: str, shape, scale: float, offset: float = 0.0):
    import torch

    count = int(np.prod(shape)) if len(shape) else 1
    u = deterministic_uniform(seed, name, count)
    values = np.float32(offset) + np.float32(scale) * u
    return torch.from_numpy(values.astype(np.float32).reshape(shape))
