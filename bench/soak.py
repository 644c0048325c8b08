#!/usr/bin/env python3
"""Soak test of `monologue serve` (not part of the test suite), loopback only.

Holds a server at its maximum number of transcription streams for --minutes: --streams workers, each running
one real-time stream after another (the same WAV, 80 ms chunks). Checks that every stream ends OK with exactly
the words a single stream gets (nothing lost or garbled under sustained load), and samples the server's
resident memory every --sample seconds: the median of the last minute against the median of the first minute
after warm-up shows whether memory stays flat. Exits non-zero on any failed or wrong stream, or when memory grew
by more than --max-growth-mb.

    bench/soak.py --minutes 10 --streams 8                 # spawns build/monologue serve with the tiny STT model
    bench/soak.py --minutes 10 --streams 32 --model DIR    # a real model
"""
import argparse
import importlib.util
import pathlib
import statistics
import subprocess
import sys
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--streams", type=int, default=8, help="concurrent streams = the server's --max-streams")
    ap.add_argument("--model", default=str(ROOT / "tests/data/asr/tiny-stt"))
    ap.add_argument("--wav", default=str(ROOT / "tests/data/asr/speech_en.wav"))
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads")
    ap.add_argument("--binary", default=str(ROOT / "build" / "monologue"))
    ap.add_argument("--sample", type=float, default=5, help="seconds between memory samples")
    ap.add_argument("--max-growth-mb", type=float, default=32)
    a = ap.parse_args()

    with wave.open(a.wav, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "a mono 16-bit WAV"
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    m = load.load_stubs()
    pb, rpc = m["transcription_pb2"], m["transcription_pb2_grpc"]
    cmd = [a.binary, "serve", "--listen", "127.0.0.1:0", "--model", a.model,
           "--max-streams", str(a.streams), "--threads", str(a.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        sys.exit("server did not start")
    addr = line.rsplit(" ", 1)[1].strip()
    assert load.loopback(addr)
    try:
        stub = rpc.TranscriptionStub(grpc.insecure_channel(addr))
        first = []
        load.run_stream(pb, stub, pcm, rate, 50.0, first, timeout=120)  # the words one stream gets
        status, expected, _, _ = first[0]
        if status != "OK" or not expected:
            sys.exit(f"reference stream failed: {status}")
        print(f"server {addr}, {a.streams} streams of {len(pcm) / 2 / rate:.2f} s at real time for "
              f"{a.minutes} min; each must give {len(expected)} words", flush=True)

        stop_at = time.monotonic() + a.minutes * 60
        lock = threading.Lock()
        totals = {"streams": 0, "wrong": 0, "failed": 0, "latencies": []}
        failures = []

        def worker():
            while time.monotonic() < stop_at:
                out = []
                load.run_stream(pb, stub, pcm, rate, 1.0, out, timeout=120)
                status, words, lat, _ = out[0]
                with lock:
                    totals["streams"] += 1
                    totals["latencies"] += lat
                    if status != "OK":
                        totals["failed"] += 1
                        failures.append(status)
                    elif words != expected:
                        totals["wrong"] += 1
                        failures.append(f"words {words}")

        threads = [threading.Thread(target=worker) for _ in range(a.streams)]
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

    warm = [r for s, r in samples if 60 <= s < 120] or [r for _, r in samples[:3]]
    last = [r for s, r in samples if s >= samples[-1][0] - 60]
    growth = statistics.median(last) - statistics.median(warm)
    lat = totals["latencies"]
    print(f"streams {totals['streams']}  failed {totals['failed']}  wrong words {totals['wrong']}  "
          f"word latency p50 {load.pct(lat, 50):.3f} s p99 {load.pct(lat, 99):.3f} s")
    print(f"server RSS: minute 2 median {statistics.median(warm):.1f} MB, last minute median "
          f"{statistics.median(last):.1f} MB (growth {growth:+.1f} MB), max {max(r for _, r in samples):.1f} MB")
    for f in failures[:5]:
        print("  failure:", f)
    ok = totals["failed"] == 0 and totals["wrong"] == 0 and growth <= a.max_growth_mb
    print("SOAK OK" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
