#!/usr/bin/env python3
"""Stream an audio file to `monologue serve` and print each word as the server decides it.

    pip install grpcio grpcio-tools          # scripts/setup.sh puts them in the project's venv
    monologue serve --model DIR &            # prints "listening on 127.0.0.1:50051"
    python samples/python/transcribe_client.py 127.0.0.1:50051 samples/audio/hello_en.wav [--realtime]

Any file FFmpeg reads works (WAV of any sample format, FLAC, MP3, Ogg/Opus, ...): the file's bytes go as
they are (CONTAINER_AUTO) and the server decodes them. --realtime paces WAV files at their own rate.
The API is service/proto/monologue/v1/transcription.proto: config first, then audio chunks of any size;
half-closing the request stream flushes the last words, then the server ends the stream with OK.
"""
import importlib
import pathlib
import sys
import tempfile
import struct
import time

import grpc
from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[2] / "service" / "proto"


def load_stubs():
    out = tempfile.mkdtemp()  # generate the Python stubs from the .proto on the fly
    protoc.main(["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}",
                 str(PROTO_ROOT / "monologue/v1/transcription.proto")])
    sys.path.insert(0, out)
    return (importlib.import_module("monologue.v1.transcription_pb2"),
            importlib.import_module("monologue.v1.transcription_pb2_grpc"))


def wav_byte_rate(data):
    """Bytes per second of a RIFF/WAVE file (any sample format), or None for anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        if kind == b"fmt " and size >= 16:
            return struct.unpack("<I", data[at + 16:at + 20])[0] or None
        at += 8 + size + (size & 1)
    return None


def requests(pb, data, name, realtime):
    fmt = pb.AudioFormat(encoding=pb.CONTAINER_AUTO)  # the server reads the container and its codec
    yield pb.TranscribeRequest(config=pb.TranscribeConfig(audio_format=fmt, request_id=name))
    rate = wav_byte_rate(data) if realtime else None
    if realtime and rate is None:
        print("note: --realtime paces WAV files only; sending as fast as the server reads", file=sys.stderr)
    chunk = rate * 80 // 1000 if rate else 32 * 1024  # 80 ms of a WAV per message when pacing
    for at in range(0, len(data), chunk):
        yield pb.TranscribeRequest(audio=data[at:at + chunk])
        if rate:
            time.sleep(0.08)
    # Returning ends the request stream (half-close): the server flushes and finishes.


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    try:
        data = pathlib.Path(sys.argv[2]).read_bytes()
    except OSError as e:
        sys.exit(f"error: cannot read {sys.argv[2]}: {e.strerror}")
    if not data:
        sys.exit(f"error: {sys.argv[2]} is empty")
    pb, rpc = load_stubs()
    with grpc.insecure_channel(sys.argv[1]) as channel:
        stub = rpc.TranscriptionStub(channel)
        try:
            for response in stub.Transcribe(requests(pb, data, sys.argv[2], "--realtime" in sys.argv)):
                kind = response.WhichOneof("event")
                if kind == "word":
                    w = response.word
                    print(f"{w.start_seconds:7.2f} {w.end_seconds:7.2f}  {w.text}", flush=True)
                elif kind == "end_of_turn":
                    print(f"{response.end_of_turn.time_seconds:7.2f}          <end of turn>", flush=True)
                elif kind == "end":
                    print(f"-- {response.end.words} words, {response.end.audio_seconds:.2f} s of audio")
        except grpc.RpcError as e:  # RESOURCE_EXHAUSTED: server full; INVALID_ARGUMENT: bad config/audio
            sys.exit(f"error: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
