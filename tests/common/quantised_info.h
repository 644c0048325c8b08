// What every mode's engine says about an LM loaded with `--dtype int8` / `int4`: its info names the dtype,
// and its weights line (DescribeQuantization) says the Linears were quantised at load. The ASR, TTS and
// dialogue engines' infos all carry `dtype` and `lm_weights`.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace monologue::test_util {

template <typename EngineInfo>
void ExpectQuantisedAtLoad(const EngineInfo& info, const std::string& dtype) {
  EXPECT_EQ(info.dtype, dtype);
  EXPECT_NE(info.lm_weights.find(dtype + " weights"), std::string::npos) << info.lm_weights;
  EXPECT_NE(info.lm_weights.find("quantised at load in"), std::string::npos) << info.lm_weights;
}

}  // namespace monologue::test_util
