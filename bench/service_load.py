#!/usr/bin/env python3
"""Load benchmark for `monologue serve` (not a test): N concurrent streams of the same WAV, each sent at real
time (80 ms chunks); reports per-word latency (word received - wall time its end was sent), p50/p99, whether
every stream received the same words, and whether the server kept up (a stream that finishes much later than
its audio duration + the model delay fell behind).

    monologue serve --model DIR --max-streams 32 --metrics-listen 127.0.0.1:9100 &
    bench/service_load.py 127.0.0.1:50051 samples/audio/hello_en.wav --streams 1,4,8,16,32

Find the largest N for which every stream keeps up (p99 latency stays bounded and no stream loses a word).
"""
import argparse
import statistics
import sys
import threading
import time
import wave
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "samples" / "python"))
import grpc  # noqa: E402
import transcribe_client  # noqa: E402  (stub generation)


def run_stream(pb, stub, pcm, rate, speed, out):
    chunk = rate * 2 * 80 // 1000
    sent_at = []  # (seconds of audio sent, wall time)
    t0 = time.monotonic()

    def reqs():
        yield pb.TranscribeRequest(config=pb.TranscribeConfig(
            audio_format=pb.AudioFormat(encoding=pb.LINEAR_PCM_S16LE, sample_rate_hz=rate)))
        for i in range(0, len(pcm), chunk):
            due = t0 + (i / 2 / rate) / speed
            time.sleep(max(0.0, due - time.monotonic()))
            yield pb.TranscribeRequest(audio=pcm[i:i + chunk])
            sent_at.append(((i + chunk) / 2 / rate, time.monotonic()))

    words, lat = [], []
    try:
        for r in stub.Transcribe(reqs()):
            if r.WhichOneof("event") == "word":
                now = time.monotonic()
                words.append(r.word.text)
                end = r.word.end_seconds
                when = next((t for s, t in sent_at if s >= end), sent_at[-1][1] if sent_at else now)
                lat.append(now - when)
        status = "OK"
    except grpc.RpcError as e:
        status = e.code().name
    out.append((status, words, lat, time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("wav")
    ap.add_argument("--streams", default="1,2,4,8")
    ap.add_argument("--speed", type=float, default=1.0)
    a = ap.parse_args()
    pb, rpc = transcribe_client.load_stubs()
    with wave.open(a.wav, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    duration = len(pcm) / 2 / rate
    channel = grpc.insecure_channel(a.server)
    stub = rpc.TranscriptionStub(channel)
    print(f"{'streams':>7} {'ok':>4} {'same words':>10} {'p50 ms':>8} {'p99 ms':>8} {'max wall/audio':>14}")
    for n in [int(x) for x in a.streams.split(",")]:
        out = []
        threads = [threading.Thread(target=run_stream, args=(pb, stub, pcm, rate, a.speed, out)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = sum(1 for s, *_ in out if s == "OK")
        same = len({tuple(w) for s, w, *_ in out if s == "OK"}) == 1
        lat = sorted(x for *_, l, _ in out for x in l)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan")
        worst = max(wall for *_, wall in out) / (duration / a.speed)
        print(f"{n:>7} {ok:>4} {str(same):>10} {p50:>8.0f} {p99:>8.0f} {worst:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
