#!/usr/bin/env python3
"""Send text to `monologue serve --tts ...` as it arrives and write the speech to a WAV file as it comes back.

    pip install grpcio grpcio-tools          # scripts/setup.sh puts them in the project's venv
    monologue serve --tts kyutai/tts-1.6b-en_fr &         # prints "listening on 127.0.0.1:50051"
    python samples/python/synthesize_client.py 127.0.0.1:50051 out.wav "Hello there." [--voice NAME ...]
    some-llm | python samples/python/synthesize_client.py 127.0.0.1:50051 out.wav -   # stdin, as it arrives
    python samples/python/synthesize_client.py 127.0.0.1:50051 --list-voices

The API is service/proto/monologue/v1/synthesis.proto: config first, then text chunks of any size (`end_turn`
switches speaker); half-closing the request stream means "no more text": the server speaks the rest, sends the
last words and `end`, then ends the stream with OK.
"""
import argparse
import importlib
import pathlib
import sys
import tempfile
import wave

import grpc
from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[2] / "service" / "proto"


def load_stubs():
    out = tempfile.mkdtemp()  # generate the Python stubs from the .protos on the fly
    for name in ("transcription", "synthesis"):
        protoc.main(["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}",
                     str(PROTO_ROOT / f"monologue/v1/{name}.proto")])
    sys.path.insert(0, out)
    return (importlib.import_module("monologue.v1.transcription_pb2"),
            importlib.import_module("monologue.v1.synthesis_pb2"),
            importlib.import_module("monologue.v1.synthesis_pb2_grpc"))


def requests(tpb, spb, args):
    config = spb.SynthesizeConfig(voices=args.voice, output_encoding=tpb.LINEAR_PCM_S16LE, request_id="sample")
    if args.temp is not None:
        config.temperature = args.temp
    if args.seed is not None:
        config.seed = args.seed
    yield spb.SynthesizeRequest(config=config)
    if args.text == ["-"]:
        while chunk := sys.stdin.readline():  # a line at a time, as it arrives
            yield spb.SynthesizeRequest(text=chunk)
    else:
        yield spb.SynthesizeRequest(text=" ".join(args.text))
    # Returning ends the request stream (half-close): the server speaks the rest and finishes.


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("server")
    p.add_argument("output", nargs="?")
    p.add_argument("text", nargs="*")
    p.add_argument("--voice", action="append", default=[], help="a voice name (ListVoices); one per speaker")
    p.add_argument("--temp", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--list-voices", action="store_true")
    args = p.parse_args()
    tpb, spb, rpc = load_stubs()
    with grpc.insecure_channel(args.server) as channel:
        stub = rpc.SynthesisStub(channel)
        try:
            if args.list_voices:
                voices = stub.ListVoices(spb.ListVoicesRequest())
                for v in voices.voices:
                    print(v + ("  (default)" if v == voices.default_voice else ""))
                return
            if not args.output or not args.text:
                sys.exit("give OUTPUT.wav and TEXT (or - for stdin)")
            with wave.open(args.output, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(24000)
                for response in stub.Synthesize(requests(tpb, spb, args)):
                    kind = response.WhichOneof("event")
                    if kind == "audio":
                        wav.writeframes(response.audio.data)  # 80 ms of 16-bit PCM per message
                    elif kind == "word":
                        w = response.word
                        print(f"{w.start_seconds:7.2f} {w.end_seconds:7.2f}  {w.text}", flush=True)
                    elif kind == "end":
                        print(f"{response.end.audio_seconds:.2f} s of audio, {response.end.words} words",
                              file=sys.stderr)
        except grpc.RpcError as e:
            sys.exit(f"server {args.server}: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
