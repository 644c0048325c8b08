#!/usr/bin/env python3
"""Rounds of the CPU real-time goals (issue 15), one after another, and a table of them all.

Each round runs, with the built `monologue` and random weights of the released architectures:
  - `bench codec --batch 1`: Mimi's streaming encode and decode of one 80 ms frame (goal: <= 10 ms each);
  - `bench transcribe --preset stt-1b-en_fr --dtype int8 --batch 1`: the transcription step and the longest a
    live frame's words come after its audio (goal: step < 80 ms);
  - `bench synthesize --preset tts-1.6b-en_fr --dtype int8 --batch 1`: the synthesis step and the pre-roll a
    player starting at the first timed frame needs to play them all without a gap (goal: step < 80 ms).
Long runs (--stt-steps, --tts-steps) take in the slow stretches a shared VM has (its memory's speed halves for
seconds at a time), which short runs miss or catch whole. The memory read speed each bench prints before its
table is kept beside its figures.

    bench/cpu_realtime.py --rounds 5
    bench/cpu_realtime.py --rounds 3 --pause 60 --binary build/monologue
"""
import argparse
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(binary, args):
    out = subprocess.run([binary, "bench", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"monologue bench {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return out.stdout


def sweep(text):
    m = re.search(r"memory read speed now: ([0-9.]+) GB/s", text)
    return float(m.group(1)) if m else float("nan")


def row(text, header_word, batch=1):
    """The numbers of the table row for `batch` under the header that contains `header_word`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if header_word in line and "batch" in line:
            for follow in lines[i + 1:]:
                fields = follow.split()
                if fields and fields[0] == str(batch):
                    return [float(x) for x in fields]
    sys.exit(f"no batch {batch} row under '{header_word}' in:\n{text}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pause", type=float, default=0, help="seconds between rounds")
    p.add_argument("--binary", default=str(ROOT / "build" / "monologue"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--codec-frames", type=int, default=30)
    p.add_argument("--stt-steps", type=int, default=100)
    p.add_argument("--tts-steps", type=int, default=300)
    args = p.parse_args()
    if args.rounds < 1:
        sys.exit("--rounds must be >= 1")
    t = str(args.threads)
    rows = []
    for r in range(args.rounds):
        if r and args.pause:
            time.sleep(args.pause)
        stamp = time.strftime("%H:%M", time.gmtime())
        codec = run(args.binary, ["codec", "--batch", "1", "--frames", str(args.codec_frames), "--threads", t])
        enc, dec = row(codec, "encode ms")[1], row(codec, "encode ms")[3]
        stt = run(args.binary, ["transcribe", "--preset", "stt-1b-en_fr", "--dtype", "int8", "--batch", "1",
                                "--steps", str(args.stt_steps), "--threads", t])
        s = row(stt, "lag ms")  # batch, mean, p50, p95, max, RTF, x realtime, lag
        tts = run(args.binary, ["synthesize", "--preset", "tts-1.6b-en_fr", "--dtype", "int8", "--batch", "1",
                                "--steps", str(args.tts_steps), "--ttfa-runs", "1", "--threads", t])
        y = row(tts, "buffer ms")  # batch, mean, p50, p95, max, RTF, x realtime, buffer
        rows.append((stamp, sweep(codec), enc, dec, sweep(stt), s[1], s[3], s[4], s[7], sweep(tts), y[1], y[2],
                     y[3], y[4], y[7]))
        print(f"round {r + 1}/{args.rounds} at {stamp} UTC: Mimi {enc:.2f} / {dec:.2f} ms, stt-1b int8 {s[1]:.2f} "
              f"ms (lag {s[7]:.0f}), tts-1.6b int8 {y[1]:.2f} ms (p95 {y[3]:.1f}, buffer {y[7]:.0f} ms)",
              flush=True)
    print()
    print("| UTC | GB/s | Mimi enc / dec ms | GB/s | stt-1b int8 mean / p95 / max ms, lag ms "
          "| GB/s | tts-1.6b int8 mean / p50 / p95 / max ms, buffer ms |")
    print("|---|---|---|---|---|---|---|")
    for (stamp, g1, enc, dec, g2, sm, sp95, smax, lag, g3, ym, yp50, yp95, ymax, buf) in rows:
        print(f"| {stamp} | {g1:.1f} | {enc:.2f} / {dec:.2f} | {g2:.1f} | {sm:.2f} / {sp95:.2f} / {smax:.2f}, {lag:.0f} "
              f"| {g3:.1f} | {ym:.2f} / {yp50:.2f} / {yp95:.2f} / {ymax:.2f}, {buf:.0f} |")
    under = sum(1 for x in rows if x[10] < 80)
    print(f"\ntts-1.6b int8 mean step under 80 ms in {under} of {len(rows)} rounds; stt-1b int8 in "
          f"{sum(1 for x in rows if x[5] < 80)}; Mimi both ways <= 10 ms in "
          f"{sum(1 for x in rows if x[2] <= 10 and x[3] <= 10)}")


if __name__ == "__main__":
    main()
