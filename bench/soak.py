#!/usr/bin/env python3
"""Soak test of `monologue serve` (not part of the test suite), loopback only.

Holds a server at its maximum number of streams for --minutes: --streams workers per mode, each running one
stream after another, and checks that every stream ends OK with what a single stream gets (nothing lost or
garbled under sustained load), while the server's resident memory is sampled every --sample seconds: the median
of the last minute against the median of the second minute shows whether memory stays flat. Exits non-zero on
any failed or wrong stream, or when memory grew by more than --max-growth-mb.

  --mode transcribe   the same WAV at real time (80 ms chunks); every stream must give a lone stream's words.
  --mode synthesize   a 14-word text sent at once, the voices taking turns (alice, bob, carol: each new voice's
                      cross-attention memory is made and dropped again and again), greedy (--tts-temp 0); every
                      stream must give its voice's audio length and word count.
  --mode converse     the WAV at real time to a random-weight tiny Moshi (made with monologue-make-model);
                      every stream must end OK with as many output samples as input ones.
  --mode all          the three at once, --streams each.

    bench/soak.py --minutes 10 --streams 8                 # spawns build/monologue serve with the tiny STT model
    bench/soak.py --minutes 10 --streams 4 --mode all
    bench/soak.py --minutes 10 --streams 32 --model DIR    # a real model
"""
import argparse
import importlib.util
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("service_load", ROOT / "bench" / "service_load.py")
load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(load)


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


TEXT = "Hello there, this is a long soak of the speech synthesis service on a small model today."
VOICES = ["alice", "bob", "carol"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--streams", type=int, default=8, help="concurrent streams per mode = its slots")
    ap.add_argument("--mode", choices=("transcribe", "synthesize", "converse", "all"), default="transcribe")
    ap.add_argument("--model", default=str(ROOT / "tests/data/asr/tiny-stt"))
    ap.add_argument("--tts-model", default=str(ROOT / "tests/data/tts/tiny-tts"))
    ap.add_argument("--voices", default=str(ROOT / "tests/data/tts/voices"))
    ap.add_argument("--dialogue-model", help="a Moshi model directory (default: a tiny random one, made here)")
    ap.add_argument("--wav", default=str(ROOT / "tests/data/asr/speech_en.wav"))
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads")
    ap.add_argument("--binary", default=str(ROOT / "build" / "monologue"))
    ap.add_argument("--sample", type=float, default=5, help="seconds between memory samples")
    ap.add_argument("--max-growth-mb", type=float, default=32)
    a = ap.parse_args()
    modes = ["transcribe", "synthesize", "converse"] if a.mode == "all" else [a.mode]

    with wave.open(a.wav, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "a mono 16-bit WAV"
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    m = load.load_stubs()
    cmd = [a.binary, "serve", "--listen", "127.0.0.1:0", "--threads", str(a.threads)]
    made = None
    if "transcribe" in modes:
        cmd += ["--model", a.model, "--max-streams", str(a.streams)]
    if "synthesize" in modes:
        cmd += ["--tts", a.tts_model, "--voices", a.voices, "--default-voice", VOICES[0], "--tts-temp", "0",
                "--max-tts-streams", str(a.streams)]
    if "converse" in modes:
        dialogue = a.dialogue_model
        if dialogue is None:
            dialogue = made = tempfile.mkdtemp(prefix="soak_moshi_")
            subprocess.run([str(ROOT / "build" / "monologue-make-model"), "--preset", "tiny-moshi-8", "--dtype",
                            "f32", "--tokenizer", str(ROOT / "tests/data/tokenizers/tiny_en_fr_400.model"),
                            "--out", dialogue], check=True, stdout=subprocess.DEVNULL)
        cmd += ["--dialogue", dialogue, "--max-dialogue-streams", str(a.streams)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        sys.exit("server did not start")
    addr = line.rsplit(" ", 1)[1].strip()
    assert load.loopback(addr)
    channel = grpc.insecure_channel(addr)
    lock = threading.Lock()
    totals = {mode: {"streams": 0, "wrong": 0, "failed": 0} for mode in modes}
    latencies, failures = [], []
    try:
        # What one stream gets, alone: each mode's expected result.
        expected = {}
        if "transcribe" in modes:
            stt = m["transcription_pb2_grpc"].TranscriptionStub(channel)
            first = []
            load.run_stream(m["transcription_pb2"], stt, pcm, rate, 50.0, first, timeout=120)
            status, words, _, _ = first[0]
            if status != "OK" or not words:
                sys.exit(f"reference transcription stream failed: {status}")
            expected["transcribe"] = words
        if "synthesize" in modes:
            tts = m["synthesis_pb2_grpc"].SynthesisStub(channel)
            for voice in VOICES:
                out = []
                load.tts_stream(m, tts, TEXT.split(), 0.0, voice, 120, out)
                if out[0]["status"] != "OK" or not out[0]["audio_s"]:
                    sys.exit(f"reference synthesis stream ({voice}) failed: {out[0]['status']}")
                expected[voice] = (round(out[0]["audio_s"], 4), out[0]["words"])
        if "converse" in modes:
            dlg = m["dialogue_pb2_grpc"].DialogueStub(channel)
        print(f"server {addr}: {', '.join(modes)}, {a.streams} streams each for {a.minutes} min; expected: "
              + "; ".join(f"{k}: {v if k != 'transcribe' else str(len(v)) + ' words'}" for k, v in expected.items()),
              flush=True)

        stop_at = time.monotonic() + a.minutes * 60

        def record(mode, ok, why):
            with lock:
                totals[mode]["streams"] += 1
                if ok is None:
                    totals[mode]["failed"] += 1
                elif not ok:
                    totals[mode]["wrong"] += 1
                if ok is not True:
                    failures.append(f"{mode}: {why}")

        def worker(mode, index):
            n = index
            while time.monotonic() < stop_at:
                out = []
                if mode == "transcribe":
                    load.run_stream(m["transcription_pb2"], stt, pcm, rate, 1.0, out, timeout=120)
                    status, words, lat, _ = out[0]
                    with lock:
                        latencies.extend(lat)
                    record(mode, None if status != "OK" else words == expected[mode], status if status != "OK"
                           else f"words {words}")
                elif mode == "synthesize":
                    voice = VOICES[n % len(VOICES)]
                    load.tts_stream(m, tts, TEXT.split(), 0.0, voice, 120, out)
                    r = out[0]
                    got = (round(r["audio_s"], 4), r["words"])
                    record(mode, None if r["status"] != "OK" else got == expected[voice],
                           r["status"] if r["status"] != "OK" else f"{voice}: {got} instead of {expected[voice]}")
                else:
                    load.dialogue_stream(m, dlg, pcm, rate, "pcm16", 120, out)
                    r = out[0]
                    record(mode, None if r["status"] != "OK" else r["same_len"],
                           r["status"] if r["status"] != "OK" else f"{r['n_out']} samples out for {r['n_in']} in, "
                           f"last chunks {r['tail']}")
                n += a.streams

        threads = [threading.Thread(target=worker, args=(mode, i)) for mode in modes for i in range(a.streams)]
        for t in threads:
            t.start()
        samples = []  # (seconds since start, RSS MB)
        t0 = time.monotonic()
        while any(t.is_alive() for t in threads):
            samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
            time.sleep(a.sample)
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if made:
            shutil.rmtree(made, ignore_errors=True)

    warm = [r for s, r in samples if 60 <= s < 120] or [r for _, r in samples[:3]]
    last = [r for s, r in samples if s >= samples[-1][0] - 60]
    growth = statistics.median(last) - statistics.median(warm)
    for mode in modes:
        t = totals[mode]
        print(f"{mode}: streams {t['streams']}  failed {t['failed']}  wrong {t['wrong']}")
    if latencies:
        print(f"transcription word latency p50 {load.pct(latencies, 50):.3f} s p99 {load.pct(latencies, 99):.3f} s")
    print(f"server RSS: minute 2 median {statistics.median(warm):.1f} MB, last minute median "
          f"{statistics.median(last):.1f} MB (growth {growth:+.1f} MB), max {max(r for _, r in samples):.1f} MB")
    for f in failures[:8]:
        print("  failure:", f)
    ok = all(t["failed"] == 0 and t["wrong"] == 0 for t in totals.values()) and growth <= a.max_growth_mb
    print("SOAK OK" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
