#!/usr/bin/env python3
"""Talk to `monologue serve --dialogue ...` with a recorded conversation side: stream a WAV file (any sample
rate, 16-bit) at real-time pace and write Moshi's side, time-aligned and as long as the input, to a WAV file;
Moshi's text pieces are printed with their times.

    pip install grpcio grpcio-tools          # scripts/setup.sh puts them in the project's venv
    monologue serve --dialogue kyutai/moshiko-pytorch-bf16 &
    python samples/python/converse_client.py 127.0.0.1:50051 user.wav moshi.wav [--fast] [--seed S]

The API is service/proto/monologue/v1/dialogue.proto: config first, then the user's audio; one Moshi frame comes
back per 80 ms frame of input; half-closing the request stream ends the conversation.
"""
import argparse
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
    out = tempfile.mkdtemp()
    for name in ("transcription", "dialogue"):
        protoc.main(["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}",
                     str(PROTO_ROOT / f"monologue/v1/{name}.proto")])
    sys.path.insert(0, out)
    return (importlib.import_module("monologue.v1.transcription_pb2"),
            importlib.import_module("monologue.v1.dialogue_pb2"),
            importlib.import_module("monologue.v1.dialogue_pb2_grpc"))


def requests(tpb, dpb, wav, args):
    if wav.getsampwidth() != 2:
        sys.exit(f"{args.input}: this sample sends 16-bit PCM WAV files (convert with sox or ffmpeg)")
    fmt = tpb.AudioFormat(encoding=tpb.LINEAR_PCM_S16LE, sample_rate_hz=wav.getframerate(),
                          channels=wav.getnchannels())
    config = dpb.ConverseConfig(input_format=fmt, output_encoding=tpb.LINEAR_PCM_S16LE, request_id=args.input)
    if args.seed is not None:
        config.seed = args.seed
    yield dpb.ConverseRequest(config=config)
    frames = wav.getframerate() * 80 // 1000  # 80 ms per message
    start = time.monotonic()
    sent = 0
    while chunk := wav.readframes(frames):
        if not args.fast:  # real-time pace, as a live microphone would send it
            time.sleep(max(0.0, start + sent / wav.getframerate() - time.monotonic()))
        yield dpb.ConverseRequest(audio=chunk)
        sent += frames


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("server")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--seed", type=int)
    p.add_argument("--fast", action="store_true", help="send as fast as the server takes it")
    args = p.parse_args()
    tpb, dpb, rpc = load_stubs()
    with grpc.insecure_channel(args.server) as channel, wave.open(args.input, "rb") as wav, \
            wave.open(args.output, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(24000)
        try:
            for response in rpc.DialogueStub(channel).Converse(requests(tpb, dpb, wav, args)):
                kind = response.WhichOneof("event")
                if kind == "audio":
                    out.writeframes(response.audio.data)
                elif kind == "text":
                    print(f"{response.text.audio_seconds:7.2f}  {response.text.text}", flush=True)
        except grpc.RpcError as e:
            sys.exit(f"server {args.server}: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
