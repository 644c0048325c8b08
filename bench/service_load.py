#!/usr/bin/env python3
"""Load benchmark for `monologue serve` (not a test), loopback only.

Transcription (the default mode): N concurrent streams of the same WAV, each sent at real time (80 ms chunks);
reports per-word latency (word received - wall time its end was sent), p50/p99, whether every stream received
the same words, and whether the server kept up (a stream that finishes much later than its audio duration + the
model delay fell behind).

    monologue serve --model DIR --max-streams 32 --metrics-listen 127.0.0.1:9100 &
    bench/service_load.py 127.0.0.1:50051 samples/audio/hello_en.wav --streams 1,4,8,16,32

Find the largest N for which every stream keeps up (p99 latency stays bounded and no stream loses a word).

Synthesis (--mode synthesize): N concurrent Synthesize streams, each sending a ~30-word text one word every
--word-interval seconds (an LLM's pace), then half-closing. Per stream: time to first audio (first text sent ->
first audio chunk received) and the worst playback lag: a client that starts playing at the first chunk needs
chunk i by first-audio time + its start_seconds; a stream keeps real time when no chunk comes later than that
plus --slack.

Dialogue (--mode converse): N concurrent Converse streams, each sending a WAV (24 kHz, 16-bit;
tests/data/asr/speech_en.wav) at real time in 80 ms chunks as PCM16 or FLOAT32 (--dialogue-encoding). Per frame:
lag = arrival of Moshi's frame k - wall time input frame k was sent; a stream keeps real time when every frame's
lag is at most --max-frame-lag; also checks the output is exactly as long as the input.

--mode all (or a comma-separated list, e.g. synthesize,converse) runs the modes at once (round i: the i-th count
of --streams, --tts-streams and --dialogue-streams; a single count is used for every round); each round prints the
load average, and with --spawn the server's CPU time. --warmup first runs one short unreported stream per mode
(lazy initialisation); --detail adds a line per synthesis/dialogue stream (where its worst lag was, and the last
chunks of a dialogue output whose length differs from the input's).

--spawn starts `build/monologue serve` itself on a free loopback port with all three modes (tiny models by
default: tests/data/asr/tiny-stt, tests/data/tts/tiny-tts with the test voices, and a tiny random-weight Moshi
made by build/monologue-make-model), as many slots per mode as its largest round (--server-slots to override: a
mode's step cost follows its slot count, not its live streams), --server-threads as its --threads, its log in
--server-log, and stops it at the end:

    bench/service_load.py --spawn --mode all --streams 8 --tts-streams 8 --dialogue-streams 4
    bench/service_load.py --spawn --mode synthesize --tts-streams 4,16,32
    bench/service_load.py --spawn --mode converse --dialogue-streams 1,4,8
"""
import argparse
import array
import importlib
import ipaddress
import os
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
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "service" / "proto"
MAX_TOTAL_STREAMS = 512  # a bound on what one round may open
FRAME = 0.08
TEXT = ("Hello there, this is a load test of the speech synthesis service. Every stream sends one word at a "
        "time, the way a language model would, and plays the audio as it comes back.")


def load_stubs():
    out = tempfile.mkdtemp()  # the Python stubs of the three services, generated from the .protos
    for name in ("transcription", "synthesis", "dialogue"):
        protoc.main(["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}",
                     str(PROTO_ROOT / f"monologue/v1/{name}.proto")])
    sys.path.insert(0, out)
    m = {n: importlib.import_module(f"monologue.v1.{n}") for n in
         ("transcription_pb2", "transcription_pb2_grpc", "synthesis_pb2", "synthesis_pb2_grpc", "dialogue_pb2",
          "dialogue_pb2_grpc")}
    return m


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return statistics.median(xs) if q == 50 else xs[min(len(xs) - 1, int(q / 100 * len(xs)))]


# ---------------------------------------------------------------------------------------------- transcription
def run_stream(pb, stub, pcm, rate, speed, out, timeout=None):
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
        for r in stub.Transcribe(reqs(), timeout=timeout):
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


def stt_header():
    return f"{'streams':>7} {'ok':>4} {'same words':>10} {'p50 ms':>8} {'p99 ms':>8} {'max wall/audio':>14}"


def stt_row(n, out, duration, speed):
    ok = sum(1 for s, *_ in out if s == "OK")
    same = len({tuple(w) for s, w, *_ in out if s == "OK"}) == 1
    lat = sorted(x for *_, l, _ in out for x in l)
    p50 = statistics.median(lat) * 1000 if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000 if lat else float("nan")
    worst = max(wall for *_, wall in out) / (duration / speed)
    codes = sorted({s for s, *_ in out if s != "OK"})
    return f"{n:>7} {ok:>4} {str(same):>10} {p50:>8.0f} {p99:>8.0f} {worst:>14.2f}" + (
        f"  errors: {','.join(codes)}" if codes else "")


# ------------------------------------------------------------------------------------------------- synthesis
def tts_stream(m, stub, words, interval, voice, timeout, out):
    spb, tpb = m["synthesis_pb2"], m["transcription_pb2"]
    first_text = []

    def reqs():
        cfg = spb.SynthesizeConfig(output_encoding=tpb.LINEAR_PCM_S16LE, request_id="load")
        if voice:
            cfg.voices.append(voice)
        yield spb.SynthesizeRequest(config=cfg)
        t0 = time.monotonic()
        for i, w in enumerate(words):
            time.sleep(max(0.0, t0 + i * interval - time.monotonic()))
            if not first_text:
                first_text.append(time.monotonic())
            yield spb.SynthesizeRequest(text=w if i == 0 else " " + w)
        # returning half-closes: no more text

    t_first = None
    worst_lag, worst_at, audio_s, nwords, chunks = 0.0, 0.0, 0.0, 0, 0
    start = time.monotonic()
    try:
        for r in stub.Synthesize(reqs(), timeout=timeout):
            kind = r.WhichOneof("event")
            if kind == "audio":
                now = time.monotonic()
                if t_first is None:
                    t_first = now
                lag = now - (t_first + r.audio.start_seconds)
                if lag > worst_lag:
                    worst_lag, worst_at = lag, r.audio.start_seconds
                audio_s += r.audio.duration_seconds
                chunks += 1
            elif kind == "word":
                nwords += 1
        status = "OK"
    except grpc.RpcError as e:
        status = e.code().name
    ttfa = (t_first - first_text[0]) if (t_first is not None and first_text) else None
    out.append(dict(status=status, ttfa=ttfa, worst_lag=worst_lag, worst_at=worst_at, audio_s=audio_s,
                    words=nwords, chunks=chunks, wall=time.monotonic() - start))


def tts_header():
    return (f"{'streams':>7} {'ok':>4} {'ttfa p50 ms':>11} {'ttfa p99 ms':>11} {'worst lag ms':>12} "
            f"{'real time':>9} {'words':>9} {'audio s':>9}")


def tts_row(n, out, slack):
    good = [o for o in out if o["status"] == "OK" and o["ttfa"] is not None]
    ttfa = [o["ttfa"] * 1000 for o in good]
    rt = sum(1 for o in good if o["worst_lag"] <= slack)
    worst = max((o["worst_lag"] for o in good), default=float("nan")) * 1000
    words = sorted({o["words"] for o in good})
    audio = [o["audio_s"] for o in good]
    codes = sorted({o["status"] for o in out if o["status"] != "OK"})
    wtxt = str(words[0]) if len(words) == 1 else f"{words[0]}-{words[-1]}" if words else "-"
    atxt = f"{min(audio):.2f}" if audio and max(audio) - min(audio) < 0.005 else (
        f"{min(audio):.1f}-{max(audio):.1f}" if audio else "-")
    return (f"{n:>7} {len(good):>4} {pct(ttfa, 50):>11.0f} {pct(ttfa, 99):>11.0f} {worst:>12.0f} "
            f"{f'{rt}/{n}':>9} {wtxt:>9} {atxt:>9}") + (f"  errors: {','.join(codes)}" if codes else "")


# -------------------------------------------------------------------------------------------------- dialogue
def dialogue_stream(m, stub, pcm16, rate, encoding, timeout, out):
    dpb, tpb = m["dialogue_pb2"], m["transcription_pb2"]
    if encoding == "float32":
        samples = array.array("h")
        samples.frombytes(pcm16)
        data = array.array("f", (s / 32768.0 for s in samples)).tobytes()
        width, enc = 4, tpb.FLOAT32_LE
    else:
        data, width, enc = pcm16, 2, tpb.LINEAR_PCM_S16LE
    n_in = len(data) // width
    chunk = rate * 80 // 1000 * width
    sent_at = []  # wall time input frame k was (completely) handed to gRPC

    def reqs():
        fmt = tpb.AudioFormat(encoding=enc, sample_rate_hz=rate, channels=1)
        yield dpb.ConverseRequest(config=dpb.ConverseConfig(input_format=fmt, output_encoding=enc,
                                                            request_id="load"))
        t0 = time.monotonic()
        for k, i in enumerate(range(0, len(data), chunk)):
            time.sleep(max(0.0, t0 + k * FRAME - time.monotonic()))
            sent_at.append(time.monotonic())
            yield dpb.ConverseRequest(audio=data[i:i + chunk])

    lags, frames, n_out, end_audio, tail = [], [], 0, None, []
    start = time.monotonic()
    try:
        for r in stub.Converse(reqs(), timeout=timeout):
            kind = r.WhichOneof("event")
            if kind == "audio":
                now = time.monotonic()
                k = int(round(r.audio.start_seconds / FRAME))
                if sent_at:
                    lags.append(now - sent_at[min(k, len(sent_at) - 1)])
                    frames.append(k)
                n_out += len(r.audio.data) // width
                tail = (tail + [(round(r.audio.start_seconds, 4), round(r.audio.duration_seconds, 4),
                                 len(r.audio.data) // width)])[-3:]
            elif kind == "end":
                end_audio = r.end.audio_seconds
        status = "OK"
    except grpc.RpcError as e:
        status = e.code().name
    out.append(dict(status=status, lags=lags, frames=frames, same_len=(n_out == n_in), n_in=n_in, n_out=n_out,
                    wall=time.monotonic() - start, end_audio=end_audio, tail=tail,
                    sent_chunks=len(sent_at)))


def dlg_header():
    return (f"{'streams':>7} {'ok':>4} {'lag p50 ms':>10} {'lag p99 ms':>10} {'max lag ms':>10} {'real time':>9} "
            f"{'same length':>11} {'max wall/audio':>14}")


def dlg_row(n, out, max_lag, duration):
    good = [o for o in out if o["status"] == "OK"]
    lags = [x * 1000 for o in good for x in o["lags"]]
    rt = sum(1 for o in good if o["lags"] and max(o["lags"]) <= max_lag)
    same = sum(1 for o in good if o["same_len"])
    worst = max((o["wall"] for o in out), default=float("nan")) / duration
    codes = sorted({o["status"] for o in out if o["status"] != "OK"})
    odd = [f"{o['n_out']}/{o['n_in']}" for o in good if not o["same_len"]][:3]
    return (f"{n:>7} {len(good):>4} {pct(lags, 50):>10.0f} {pct(lags, 99):>10.0f} "
            f"{max(lags, default=float('nan')):>10.0f} {f'{rt}/{n}':>9} {f'{same}/{n}':>11} {worst:>14.2f}") + (
        f"  errors: {','.join(codes)}" if codes else "") + (f"  out/in samples: {' '.join(odd)}" if odd else "")


# ---------------------------------------------------------------------------------------------------- server
def loopback(addr):
    host = addr.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cpu_seconds(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def spawn_server(a, slots):
    binary = ROOT / "build" / "monologue"
    dialogue = a.dialogue_model
    if dialogue is None:
        dialogue = a.made_model = tempfile.mkdtemp(prefix="service_load_moshi_")
        subprocess.run([str(ROOT / "build" / "monologue-make-model"), "--preset", "tiny-moshi-8", "--dtype", "f32",
                        "--tokenizer", str(ROOT / "tests/data/tokenizers/tiny_en_fr_400.model"), "--out", dialogue],
                       check=True, stdout=subprocess.DEVNULL)
    cmd = [str(binary), "serve", "--listen", "127.0.0.1:0", "--stt", a.stt_model, "--tts", a.tts_model,
           "--voices", a.voices, "--default-voice", a.default_voice, "--dialogue", dialogue,
           "--max-streams", str(max(1, slots[0])), "--max-tts-streams", str(max(1, slots[1])),
           "--max-dialogue-streams", str(max(1, slots[2]))] + (
        ["--threads", str(a.server_threads)] if a.server_threads else [])
    log = open(a.server_log, "w")
    print("server: " + " ".join(cmd), file=sys.stderr)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        sys.exit(f"server did not start (see {a.server_log})")
    return proc, line.rsplit(" ", 1)[1].strip()


def counts(s):
    return [int(x) for x in s.split(",")] if s else []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", nargs="?", help="HOST:PORT of a running server (loopback); omit with --spawn")
    ap.add_argument("wav", nargs="?", default=str(ROOT / "samples/audio/hello_en.wav"),
                    help="transcription input (16-bit mono WAV)")
    ap.add_argument("--streams", default="1,2,4,8", help="transcription streams per round")
    ap.add_argument("--speed", type=float, default=1.0, help="transcription send speed (1 = real time)")
    ap.add_argument("--mode", default="transcribe",
                    help="transcribe, synthesize, converse, a comma-separated list of them (run at once), or all")
    ap.add_argument("--tts-streams", default="1,4,8", help="synthesis streams per round")
    ap.add_argument("--dialogue-streams", default="1,2,4", help="dialogue streams per round")
    ap.add_argument("--word-interval", type=float, default=0.1, help="seconds between the text's words")
    ap.add_argument("--words", type=int, default=30, help="words of the synthesis text (repeats TEXT)")
    ap.add_argument("--voice", default="", help="synthesis voice (default: the server's)")
    ap.add_argument("--slack", type=float, default=0.1,
                    help="synthesis: seconds a chunk may come after its playback deadline and still be real time")
    ap.add_argument("--dialogue-wav", default=str(ROOT / "tests/data/asr/speech_en.wav"))
    ap.add_argument("--dialogue-encoding", choices=("pcm16", "float32"), default="pcm16")
    ap.add_argument("--max-frame-lag", type=float, default=0.2,
                    help="dialogue: the largest frame lag (s) of a stream that keeps real time")
    ap.add_argument("--timeout", type=float, default=120, help="deadline of every stream (s)")
    ap.add_argument("--spawn", action="store_true", help="start build/monologue serve with all three modes")
    ap.add_argument("--stt-model", default=str(ROOT / "tests/data/asr/tiny-stt"))
    ap.add_argument("--tts-model", default=str(ROOT / "tests/data/tts/tiny-tts"))
    ap.add_argument("--voices", default=str(ROOT / "tests/data/tts/voices"))
    ap.add_argument("--default-voice", default="alice")
    ap.add_argument("--dialogue-model", help="default: a tiny-moshi-8 made in a temporary directory")
    ap.add_argument("--server-slots", help="STT,TTS,DIALOGUE slots of the spawned server (default: the largest "
                    "round of each mode)")
    ap.add_argument("--server-threads", type=int, help="--threads of the spawned server")
    ap.add_argument("--warmup", action="store_true",
                    help="before the rounds, one short unreported stream per mode (lazy initialisation)")
    ap.add_argument("--detail", action="store_true", help="also a line per synthesis/dialogue stream")
    ap.add_argument("--server-log", default=os.path.join(tempfile.gettempdir(), "service_load_server.log"))
    a = ap.parse_args()
    a.made_model = None

    modes = ("transcribe", "synthesize", "converse") if a.mode == "all" else tuple(a.mode.split(","))
    if any(k not in ("transcribe", "synthesize", "converse") for k in modes):
        sys.exit(f"--mode {a.mode}: transcribe, synthesize, converse (comma-separated) or all")
    per = {"transcribe": counts(a.streams) if "transcribe" in modes else [],
           "synthesize": counts(a.tts_streams) if "synthesize" in modes else [],
           "converse": counts(a.dialogue_streams) if "converse" in modes else []}
    rounds = max(len(v) for v in per.values())
    for k, v in per.items():
        if v and len(v) not in (1, rounds):
            sys.exit(f"--mode {a.mode}: give each mode one count or {rounds}")
        if v:
            per[k] = v * rounds if len(v) == 1 else v
    if any(sum(per[k][i] for k in modes) > MAX_TOTAL_STREAMS for i in range(rounds)):
        sys.exit(f"at most {MAX_TOTAL_STREAMS} streams in one round")

    m = load_stubs()
    pb = m["transcription_pb2"]
    with wave.open(a.wav, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    duration = len(pcm) / 2 / rate
    with wave.open(a.dialogue_wav, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == 24000, \
            "dialogue input: 24 kHz 16-bit mono"
        d_rate, d_pcm = w.getframerate(), w.readframes(w.getnframes())
    d_duration = len(d_pcm) / 2 / d_rate
    words = (TEXT.split() * (a.words // len(TEXT.split()) + 1))[:a.words]

    proc = None
    if a.spawn:
        slots = counts(a.server_slots) or [max(per[k], default=0) for k in ("transcribe", "synthesize", "converse")]
        proc, a.server = spawn_server(a, slots)
    if not a.server:
        sys.exit("give the server's HOST:PORT, or --spawn")
    if not loopback(a.server):
        sys.exit(f"{a.server}: this benchmark only drives a server on loopback (127.0.0.1, ::1, localhost)")
    channel = grpc.insecure_channel(a.server)
    stt = m["transcription_pb2_grpc"].TranscriptionStub(channel)
    tts = m["synthesis_pb2_grpc"].SynthesisStub(channel)
    dlg = m["dialogue_pb2_grpc"].DialogueStub(channel)
    try:
        if a.warmup:
            w = []
            warm = [threading.Thread(target=run_stream, args=(pb, stt, pcm[:rate * 2], rate, 1.0, w, a.timeout)),
                    threading.Thread(target=tts_stream, args=(m, tts, words[:3], 0.0, a.voice, a.timeout, w)),
                    threading.Thread(target=dialogue_stream, args=(m, dlg, d_pcm[:d_rate * 2], d_rate,
                                                                   a.dialogue_encoding, a.timeout, w))]
            for k, t in zip(("transcribe", "synthesize", "converse"), warm):
                if k in modes:
                    t.start()
                    t.join()
        if modes == ("transcribe",):
            print(stt_header())
        for i in range(rounds):
            load = os.getloadavg()[0]
            outs = {k: [] for k in modes}
            threads = []
            for k in modes:
                n = per[k][i]
                for _ in range(n):
                    if k == "transcribe":
                        t = threading.Thread(target=run_stream,
                                             args=(pb, stt, pcm, rate, a.speed, outs[k], a.timeout))
                    elif k == "synthesize":
                        t = threading.Thread(target=tts_stream,
                                             args=(m, tts, words, a.word_interval, a.voice, a.timeout, outs[k]))
                    else:
                        t = threading.Thread(target=dialogue_stream,
                                             args=(m, dlg, d_pcm, d_rate, a.dialogue_encoding, a.timeout, outs[k]))
                    threads.append(t)
            cpu0, wall0 = (cpu_seconds(proc.pid) if proc else float("nan")), time.monotonic()
            me0 = sum(os.times()[:2])
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - wall0
            me = sum(os.times()[:2]) - me0
            cpu = (cpu_seconds(proc.pid) - cpu0) if proc else float("nan")
            if modes == ("transcribe",):
                print(stt_row(per["transcribe"][i], outs["transcribe"], duration, a.speed), flush=True)
                continue
            print(f"-- round {i + 1}: " + ", ".join(f"{per[k][i]} {k}" for k in modes) +
                  f"; load average {load:.2f} at start; {wall:.1f} s wall" +
                  (f", server CPU {cpu:.1f} s ({cpu / wall:.2f} cores)" if proc else "") +
                  f", client CPU {me:.1f} s ({me / wall:.2f} cores)", flush=True)
            for k in modes:
                if k == "transcribe":
                    print("transcribe " + stt_header() + "\ntranscribe " +
                          stt_row(per[k][i], outs[k], duration, a.speed))
                elif k == "synthesize":
                    print("synthesize " + tts_header() + "\nsynthesize " + tts_row(per[k][i], outs[k], a.slack))
                else:
                    print("converse   " + dlg_header() + "\nconverse   " +
                          dlg_row(per[k][i], outs[k], a.max_frame_lag, d_duration))
            if a.detail:
                for o in outs.get("synthesize", []):
                    print(f"  synthesize {o['status']}: ttfa {(o['ttfa'] or float('nan')) * 1000:.0f} ms, worst lag "
                          f"{o['worst_lag'] * 1000:.0f} ms at {o['worst_at']:.2f} s, {o['chunks']} chunks, "
                          f"{o['words']} words, {o['wall']:.1f} s wall")
                for o in outs.get("converse", []):
                    j = max(range(len(o["lags"])), key=o["lags"].__getitem__) if o["lags"] else 0
                    first = " ".join(f"{x * 1000:.0f}" for x in o["lags"][:4])
                    print(f"  converse {o['status']}: max lag {max(o['lags'], default=0) * 1000:.0f} ms at frame "
                          f"{o['frames'][j] if o['frames'] else '-'}/{len(o['lags'])}, first frames {first} ms" +
                          ("" if o["same_len"] else
                           f"; {o['n_out']} samples out for {o['n_in']} in ({o['sent_chunks']} chunks sent), "
                           f"end.audio_seconds {o['end_audio']}, last chunks (start s, duration s, samples) "
                           f"{o['tail']}"))
            sys.stdout.flush()
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            print(f"server log: {a.server_log}", file=sys.stderr)
        if a.made_model:
            shutil.rmtree(a.made_model, ignore_errors=True)


if __name__ == "__main__":
    main()
