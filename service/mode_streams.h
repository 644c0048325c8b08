// The streaming RPCs of each mode, as reactors over a ModeLoop (service/bidi_stream.h): created by the
// services in server.cc, one per call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "monologue/v1/dialogue.grpc.pb.h"
#include "monologue/v1/synthesis.grpc.pb.h"
#include "monologue/v1/transcription.grpc.pb.h"
#include "service/mode_loop.h"

namespace monologue {

class AsrEngine;
class TtsEngine;
class DialogueEngine;

grpc::ServerBidiReactor<v1::TranscribeRequest, v1::TranscribeResponse>* NewTranscribeStream(
    ModeLoop* loop, grpc::CallbackServerContext* context, AsrEngine* engine);

struct SynthesisDefaults {
  std::string voices_dir;     // where voice names resolve ("" = kyutai/tts-voices in the HF cache)
  std::string default_voice;  // used when a config names none
};
grpc::ServerBidiReactor<v1::SynthesizeRequest, v1::SynthesizeResponse>* NewSynthesizeStream(
    ModeLoop* loop, grpc::CallbackServerContext* context, TtsEngine* engine,
    const SynthesisDefaults* defaults);

grpc::ServerBidiReactor<v1::ConverseRequest, v1::ConverseResponse>* NewConverseStream(
    ModeLoop* loop, grpc::CallbackServerContext* context, DialogueEngine* engine);

}  // namespace monologue
