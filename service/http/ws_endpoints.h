// The WebSocket endpoints of `serve --http` (docs/websocket.md), one protocol each, as WsConnections over the
// mode's ModeLoop (the same scheduler as the mode's gRPC service):
//   /api/asr-streaming  Kyutai's Rust moshi-server speech-to-text protocol (MessagePack)    asr_ws_endpoint.cc
//   /api/tts_streaming  Kyutai's Rust moshi-server text-to-speech protocol (MessagePack,
//                       raw PCM or Ogg/Opus per `format`)                                   tts_ws_endpoint.cc
//   /api/chat           the Moshi web client's dialogue protocol (moshi/server.py)           chat_ws_endpoint.cc
#pragma once

#include <memory>
#include <string>

#include "service/http/ws_connection.h"
#include "service/mode_streams.h"

namespace monologue {

class AsrEngine;
class TtsEngine;
class DialogueEngine;

std::shared_ptr<WsConnection> NewAsrWsConnection(WsSocket ws, ModeLoop* loop, AsrEngine* engine,
                                                 const QueryParams& query);
std::shared_ptr<WsConnection> NewTtsWsConnection(WsSocket ws, ModeLoop* loop, TtsEngine* engine,
                                                 const SynthesisDefaults* defaults, const QueryParams& query);
std::shared_ptr<WsConnection> NewChatWsConnection(WsSocket ws, ModeLoop* loop, DialogueEngine* engine,
                                                  const QueryParams& query);

}  // namespace monologue
