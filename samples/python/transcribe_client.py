#!/usr/bin/env python3
"""Stream a WAV file to `monologue serve` and print each word as the server decides it.

    pip install grpcio grpcio-tools          # scripts/setup.sh puts them in the project's venv
    monologue serve --model DIR &            # prints "listening on 127.0.0.1:50051"
    python samples/python/transcribe_client.py 127.0.0.1:50051 samples/audio/hello_en.wav [--realtime]

The API is service/proto/monologue/v1/transcription.proto: config first, then audio chunks of any size;
half-closing the request stream flushes the last words, then the server ends the stream with OK.
"""
import importlib
import pathlib
import sys
import tempfile
import time
import wave

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


def requests(pb, path, realtime):
    with wave.open(path, "rb") as wav:
        assert wav.getsampwidth() == 2, "this sample sends 16-bit PCM WAV files"
        fmt = pb.AudioFormat(encoding=pb.LINEAR_PCM_S16LE, sample_rate_hz=wav.getframerate(),
                             channels=wav.getnchannels())
        yield pb.TranscribeRequest(config=pb.TranscribeConfig(audio_format=fmt, request_id=path))
        frames = wav.getframerate() * 80 // 1000  # 80 ms per message
        while chunk := wav.readframes(frames):
            yield pb.TranscribeRequest(audio=chunk)
            if realtime:
                time.sleep(0.08)
    # Returning ends the request stream (half-close): the server flushes and finishes.


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pb, rpc = load_stubs()
    with grpc.insecure_channel(sys.argv[1]) as channel:
        stub = rpc.TranscriptionStub(channel)
        try:
            for response in stub.Transcribe(requests(pb, sys.argv[2], "--realtime" in sys.argv)):
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
