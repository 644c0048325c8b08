// The CUDA path against the same reference fixtures (skipped without a GPU; tests never need one).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include "tests/mimi/mimi_test_util.h"

namespace monologue {
namespace {

TEST(MimiCudaTest, TinyStreamingEncodeDecodeMatchTheReference) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  auto model = mimi_test::LoadTiny(c10::Device(c10::kCUDA));
  ASSERT_TRUE(model.ok()) << model.status();
  auto file = SafeTensorsFile::Open(mimi_test::DataPath("tiny_cases.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  MimiStreamState state = model->NewState(1);
  const at::Tensor codes = mimi_test::StreamEncode(*model, state, mimi_test::Fixture(**file, "input_long"));
  EXPECT_GE(mimi_test::Agreement(codes, mimi_test::Fixture(**file, "stream_codes32_long")), 0.999);
  MimiStreamState dstate = model->NewState(1);
  const at::Tensor pcm =
      mimi_test::StreamDecode(*model, dstate, mimi_test::Fixture(**file, "decode_codes").cuda());
  EXPECT_LT(mimi_test::RelativeL2(pcm, mimi_test::Fixture(**file, "stream_decode")), 1e-4);
  auto offline = model->Encode(mimi_test::Fixture(**file, "input_a_cut"));
  ASSERT_TRUE(offline.ok()) << offline.status();
  EXPECT_GE(mimi_test::Agreement(*offline, mimi_test::Fixture(**file, "offline_codes32_a_cut")), 0.999);
}

}  // namespace
}  // namespace monologue
