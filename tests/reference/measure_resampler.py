"""Our resampler (core/audio: FFmpeg swresample, soxr engine) against the reference's two loaders, for input
not at 24 kHz. A measurement, not a fixture: it prints a table; nothing is written under tests/data.

The reference loads audio in two ways:
  - sphn.read(path, sample_rate=24000): moshi's run_inference.py and tts.py, and the DSM scripts
    stt_from_file_mlx.py / stt_from_file_rust_server.py;
  - sphn.read(path) then julius.resample_frac(audio, rate, 24000): the DSM PyTorch STT scripts
    (stt_from_file_pytorch.py, stt_from_file_with_prompt_pytorch.py, stt_evaluate_on_dataset.py).
Ours is what `monologue-decode-audio` writes (the decoder every mode uses).

For each test signal and input rate it reports, per reference:
  lag   the shift (in 24 kHz samples) that best aligns the reference with ours by cross-correlation,
        ref[i + lag] ~ ours[i] (positive: the reference is later); whole-sample peak and the parabolic
        sub-sample estimate;
  err   relative L2 error ||ours - ref|| / ||ref|| after aligning at the whole-sample lag, and after aligning
        at the sub-sample lag (band-limited shift), leaving out 20 ms at each end;
  len   output length minus ours.

Signals: espeak-ng speech (tests/data/asr/speech_en.wav, tests/data/asr/speech_fr.wav, 24 kHz) converted by
sox (`rate -v`, no dither) to 16, 44.1 and 48 kHz; the committed 16 kHz fixture tests/data/audio/speech_16k_mono.wav;
and synthetic 16-bit tones at each rate (440 Hz + 3 kHz; a logarithmic chirp from 100 Hz to 10 kHz or 95 % of the
input's Nyquist), 2 s, 0.3 amplitude.

Run (after building monologue-decode-audio):
    ~/.cache/monologue/venv/bin/python tests/reference/measure_resampler.py --decode build/monologue-decode-audio
Needs sphn and julius in the venv (scripts/setup.sh), sox on PATH.
"""
import argparse
import importlib.metadata
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import julius
import numpy as np
import sphn
import torch

ROOT = Path(__file__).resolve().parents[2]
RATES = (16000, 44100, 48000)
EDGE = 480  # 20 ms at 24 kHz
MAX_LAG = 2048


def write_pcm16(path: Path, samples: np.ndarray, rate: int):
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def tones(rate: int) -> np.ndarray:
    t = np.arange(int(2.0 * rate)) / rate
    return 0.15 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 3000 * t)


def chirp(rate: int) -> np.ndarray:
    """100 Hz up to 10 kHz, or to 95 % of the input's Nyquist when that is lower (7.6 kHz at 16 kHz)."""
    t = np.arange(int(2.0 * rate)) / rate
    f0, f1, dur = 100.0, min(10000.0, 0.95 * rate / 2), 2.0
    k = np.log(f1 / f0) / dur
    return 0.3 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)


def make_inputs(tmp: Path) -> list[tuple[str, int, Path]]:
    inputs = []
    for clip in ("speech_en", "speech_fr"):
        src = ROOT / "tests" / "data" / "asr" / f"{clip}.wav"
        for rate in RATES:
            out = tmp / f"{clip}_{rate}.wav"
            subprocess.run(["sox", "-R", "-D", str(src), "-r", str(rate), "-b", "16", "-c", "1", str(out), "rate",
                            "-v"], check=True)
            inputs.append((f"{clip} (sox)", rate, out))
    inputs.append(("speech_16k_mono.wav", 16000, ROOT / "tests" / "data" / "audio" / "speech_16k_mono.wav"))
    for name, fn in (("tones 440+3000 Hz", tones), ("chirp to 10 kHz", chirp)):
        for rate in RATES:
            out = tmp / f"{name.split()[0]}_{rate}.wav"
            write_pcm16(out, fn(rate), rate)
            inputs.append((name, rate, out))
    return inputs


def ours(decode: Path, path: Path, tmp: Path) -> np.ndarray:
    raw = tmp / "ours.f32"
    subprocess.run([str(decode), str(path), str(raw)], check=True, stderr=subprocess.DEVNULL)
    return np.fromfile(raw, dtype="<f4").astype(np.float64)


def reference_sphn(path: Path) -> np.ndarray:
    pcm, _ = sphn.read(str(path), sample_rate=24000)
    return pcm.mean(axis=0).astype(np.float64)


def reference_julius(path: Path) -> np.ndarray:
    pcm, rate = sphn.read(str(path))
    x = torch.from_numpy(pcm)
    return julius.resample_frac(x, int(rate), 24000).mean(dim=0).double().numpy()


def correlation_lags(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c[lag] = sum_i a[i] * b[i + lag] for lag in [-MAX_LAG, MAX_LAG]."""
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    full = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    lags = np.arange(-MAX_LAG, MAX_LAG + 1)
    return lags, full[lags % size]


def shifted(x: np.ndarray, shift: float) -> np.ndarray:
    """x delayed by `shift` samples (band-limited, circular): y[i] = x(i - shift)."""
    size = len(x)
    freqs = np.fft.rfftfreq(size)
    return np.fft.irfft(np.fft.rfft(x) * np.exp(-2j * np.pi * freqs * shift), size)


def compare(a: np.ndarray, ref: np.ndarray) -> dict:
    lags, c = correlation_lags(a, ref)
    k = int(np.argmax(c))
    lag = int(lags[k])
    frac = 0.0
    if 0 < k < len(c) - 1:
        y0, y1, y2 = c[k - 1], c[k], c[k + 1]
        denom = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0

    def rel_err(r: np.ndarray, whole: int) -> float:
        start = max(EDGE, -whole + EDGE)
        stop = min(len(a), len(r) - whole) - EDGE
        x, y = a[start:stop], r[start + whole:stop + whole]
        return float(np.linalg.norm(x - y) / np.linalg.norm(y))

    err_whole = rel_err(ref, lag)
    # Sub-sample: move the reference back by the fractional part, then align at the whole lag.
    padded = np.concatenate([ref, np.zeros(4096)])
    err_frac = rel_err(shifted(padded, -frac)[:len(ref)], lag)
    return {"lag": lag, "lag_frac": lag + frac, "err": err_whole, "err_frac": err_frac,
            "len": len(ref) - len(a)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--decode", type=Path, required=True, help="the monologue-decode-audio binary")
    args = ap.parse_args()
    torch.set_num_threads(1)
    versions = {name: importlib.metadata.version(name) for name in ("sphn", "julius", "torch")}
    print(", ".join(f"{name} {version}" for name, version in versions.items()))
    header = (f"{'signal':22} {'rate':>6} | {'sphn lag':>8} {'(sub)':>8} {'err':>8} {'err sub':>8} {'len':>5} | "
              f"{'julius lag':>10} {'(sub)':>7} {'err':>8} {'err sub':>8} {'len':>5}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, rate, path in make_inputs(tmp):
            mine = ours(args.decode, path, tmp)
            s = compare(mine, reference_sphn(path))
            j = compare(mine, reference_julius(path))
            print(f"{name:22} {rate:>6} | {s['lag']:>8d} {s['lag_frac']:>8.2f} {s['err']:>8.2e} {s['err_frac']:>8.2e} "
                  f"{s['len']:>5d} | {j['lag']:>10d} {j['lag_frac']:>7.2f} {j['err']:>8.2e} {j['err_frac']:>8.2e} "
                  f"{j['len']:>5d}")


if __name__ == "__main__":
    sys.exit(main())
