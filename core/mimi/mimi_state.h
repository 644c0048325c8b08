// Streaming state of a Mimi model for B batch slots that step together. Each slot is an independent
// stream: it can be reset (MimiModel::Reset) or skip a step (exec mask) without touching the others.
// Create with MimiModel::NewState; the state belongs to the model that made it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/mimi/mimi_transformer.h"
#include "core/mimi/seanet.h"
#include "core/mimi/streaming_conv.h"
#include "core/mimi/streaming_conv_transpose.h"

namespace monologue::mimi {

struct MimiEncoderState {
  SeanetState seanet;
  TransformerState transformer;
  ConvState downsample;  // unused when the model has no resampling
};

struct MimiDecoderState {
  ConvTrState upsample;  // unused when the model has no resampling
  TransformerState transformer;
  SeanetState seanet;
};

struct MimiStreamState {
  int64_t batch = 0;
  MimiEncoderState encoder;
  MimiDecoderState decoder;
};

}  // namespace monologue::mimi
