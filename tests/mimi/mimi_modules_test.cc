// Module-level properties: streaming convolutions equal their offline form for any chunking (and skip
// masked slots), the VQ nearest-centroid search equals torch.cdist + argmin, and loading / API misuse gives
// clear errors instead of crashes.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "core/mimi/mimi_loader.h"
#include "core/mimi/split_rvq.h"
#include "core/mimi/streaming_conv.h"
#include "core/mimi/streaming_conv_transpose.h"
#include "tests/mimi/mimi_test_util.h"

namespace monologue {
namespace {

using ::testing::HasSubstr;

double MaxRel(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

TEST(StreamingConvTest, ChunkedEqualsOffline) {
  at::manual_seed(3);
  for (bool gemm : {false, true})
    for (bool replicate : {false, true}) {
      for (auto [k, s, d] :
           std::vector<std::tuple<int64_t, int64_t, int64_t>>{{7, 1, 1}, {3, 1, 2}, {8, 4, 1}, {4, 2, 1}}) {
        mimi::StreamingConv1d conv(at::randn({5, 3, k}), at::randn({5}), s, d, 1, replicate, gemm);
        const at::Tensor x = at::randn({2, 3, 24 * s});
        const at::Tensor offline = conv.Forward(x);
        for (int64_t chunk : {1, 2, 3, 8}) {
          mimi::ConvState state = conv.InitState(2);
          std::vector<at::Tensor> ys;
          for (int64_t t = 0; t < 24; t += chunk)
            ys.push_back(conv.Step(state, x.narrow(2, t * s, std::min(chunk, 24 - t) * s)));
          EXPECT_LT(MaxRel(at::cat(ys, 2), offline), 1e-5) << "k" << k << " s" << s << " chunk " << chunk;
        }
      }
    }
}

TEST(StreamingConvTest, ReplicatePadsWithTheFirstSampleAndMaskedSlotsKeepState) {
  at::manual_seed(4);
  mimi::StreamingConv1d conv(at::randn({4, 2, 4}), at::Tensor(), 2, 1, 1, /*replicate=*/true);
  const at::Tensor x = at::randn({2, 2, 8});
  // Replicate padding: same as explicitly left-padding with copies of the first sample.
  const at::Tensor padded = at::cat({x.narrow(2, 0, 1).expand({2, 2, 2}), x}, 2);
  EXPECT_LT(MaxRel(conv.Forward(x), at::conv1d(padded, conv.weight(), {}, 2)), 1e-6);
  // Slot 1 idles on the first chunk (fed garbage): its output afterwards equals a fresh stream's.
  mimi::ConvState state = conv.InitState(2);
  const at::Tensor garbage = at::randn({2, 2, 4}) * 100;
  conv.Step(state, garbage, at::tensor(std::vector<int64_t>{1, 0}).to(at::kBool));
  const at::Tensor y = conv.Step(state, x.narrow(2, 0, 4));
  mimi::ConvState fresh = conv.InitState(1);
  EXPECT_LT(MaxRel(y.narrow(0, 1, 1), conv.Step(fresh, x.narrow(0, 1, 1).narrow(2, 0, 4))), 1e-6);
}

TEST(StreamingConvTransposeTest, ChunkedEqualsOfflineBothPaths) {
  at::manual_seed(5);
  // k = 2s with groups 1 takes the GEMM path; groups > 1 and k = 3s the ATen path.
  struct Shape {
    int64_t cin, cout, k, s, groups;
  };
  for (Shape sh : std::vector<Shape>{{6, 4, 8, 4, 1}, {6, 6, 4, 2, 6}, {6, 4, 9, 3, 1}}) {
    mimi::StreamingConvTranspose1d convtr(at::randn({sh.cin, sh.cout / sh.groups, sh.k}),
                                          sh.groups == 1 ? at::randn({sh.cout}) : at::Tensor(), sh.s,
                                          sh.groups);
    const at::Tensor x = at::randn({3, sh.cin, 12});
    const at::Tensor offline = convtr.Forward(x);
    ASSERT_EQ(offline.size(2), 12 * sh.s);
    for (int64_t chunk : {1, 2, 5}) {
      mimi::ConvTrState state = convtr.InitState(3);
      std::vector<at::Tensor> ys;
      for (int64_t t = 0; t < 12; t += chunk)
        ys.push_back(convtr.Step(state, x.narrow(2, t, std::min(chunk, 12 - t))));
      EXPECT_LT(MaxRel(at::cat(ys, 2), offline), 1e-5) << "k" << sh.k << " chunk " << chunk;
    }
  }
}

TEST(StreamingConvTransposeTest, GemmPathEqualsATen) {
  at::manual_seed(6);
  const at::Tensor w = at::randn({16, 8, 10}), b = at::randn({8}), x = at::randn({2, 16, 7});
  mimi::StreamingConvTranspose1d convtr(w, b, 5, 1);
  const at::Tensor reference = at::conv_transpose1d(x, w, b, 5).narrow(2, 0, 35);
  EXPECT_LT(MaxRel(convtr.Forward(x), reference), 1e-5);
}

TEST(SplitRvqTest, NearestCentroidEqualsCdistArgmin) {
  auto model_config = mimi_test::TinyConfig();
  ASSERT_TRUE(model_config.ok()) << model_config.status();
  auto file = SafeTensorsFile::Open(mimi_test::DataPath("tiny_mimi.safetensors"));
  ASSERT_TRUE(file.ok());
  mimi::WeightReader reader([&](const std::string& n) { return (*file)->Load(n); }, "tiny", c10::kCPU);
  auto rvq = mimi::SplitRvq::Load(reader, model_config->quantizer, "quantizer.");
  ASSERT_TRUE(rvq.ok()) << rvq.status();
  at::manual_seed(7);
  const int64_t dim = model_config->quantizer.input_dimension;
  const at::Tensor x = at::randn({3, dim, 9});
  const at::Tensor codes = rvq->Encode(x, 32);
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{3, 32, 9}));
  // Level 0 by hand: project, cdist, argmin.
  const at::Tensor w = (*file)->Load("quantizer.rvq_first.input_proj.weight")->clone();
  const at::Tensor z = at::conv1d(x, w).permute({0, 2, 1}).reshape({-1, w.size(0)});
  const at::Tensor expected =
      at::cdist(z.unsqueeze(0), rvq->codebook(0).unsqueeze(0)).select(0, 0).argmin(-1);
  EXPECT_TRUE(codes.select(1, 0).reshape({-1}).equal(expected));
  // Codes of fewer levels are a prefix; decode accepts any level count.
  EXPECT_TRUE(rvq->Encode(x, 8).equal(codes.narrow(1, 0, 8)));
  EXPECT_EQ(rvq->Decode(codes.narrow(1, 0, 1)).sizes(), (std::vector<int64_t>{3, dim, 9}));
}

TEST(MimiModelErrorsTest, MissingAndMisshapedTensorsNameTheTensor) {
  auto config = mimi_test::TinyConfig();
  ASSERT_TRUE(config.ok());
  auto file = SafeTensorsFile::Open(mimi_test::DataPath("tiny_mimi.safetensors"));
  ASSERT_TRUE(file.ok());
  auto missing = MimiModel::Load(
      [&](const std::string& n) -> absl::StatusOr<at::Tensor> {
        if (n == "decoder.model.5.convtr.convtr.weight") return absl::NotFoundError(n);
        return (*file)->Load(n);
      },
      "my.safetensors", *config);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("my.safetensors"));
  EXPECT_THAT(missing.status().message(), HasSubstr("decoder.model.5.convtr.convtr.weight"));
  auto misshaped = MimiModel::Load(
      [&](const std::string& n) -> absl::StatusOr<at::Tensor> {
        if (n == "encoder_transformer.transformer.layers.1.linear1.weight") return at::zeros({3, 3});
        return (*file)->Load(n);
      },
      "my.safetensors", *config);
  ASSERT_FALSE(misshaped.ok());
  EXPECT_THAT(
      misshaped.status().message(),
      HasSubstr(
          "'encoder_transformer.transformer.layers.1.linear1.weight' has shape [3, 3], expected [64, 32]"));
  // A weight holding a NaN (a corrupt file) is refused by name instead of coding noise.
  auto nan = MimiModel::Load(
      [&](const std::string& n) -> absl::StatusOr<at::Tensor> {
        absl::StatusOr<at::Tensor> t = (*file)->Load(n);
        if (t.ok() && n == "decoder.model.5.convtr.convtr.weight") {
          at::Tensor copy = t->clone();
          copy.view(-1)[7] = std::numeric_limits<float>::quiet_NaN();
          return copy;
        }
        return t;
      },
      "my.safetensors", *config);
  ASSERT_FALSE(nan.ok());
  EXPECT_THAT(
      nan.status().message(),
      HasSubstr(
          "my.safetensors: tensor 'decoder.model.5.convtr.convtr.weight' holds NaN or infinite values"));
  // A real-architecture config against the tiny file: the schema check lists the mismatches.
  auto wrong = LoadMimiFile(mimi_test::DataPath("tiny_mimi.safetensors"), MimiConfig{});
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("not a Mimi checkpoint"));
}

TEST(MimiModelErrorsTest, BadInputsAreStatusesNotCrashes) {
  auto model = mimi_test::LoadTiny();
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE(model->SetNumCodebooks(0).ok());
  EXPECT_FALSE(model->SetNumCodebooks(33).ok());
  EXPECT_THAT(model->Encode(at::zeros({1, 2, 100})).status().message(), HasSubstr("[B, 1, samples]"));
  EXPECT_THAT(model->Encode(at::zeros({1, 1, 0})).status().message(), HasSubstr("empty audio"));
  EXPECT_THAT(model->Encode(at::zeros({1, 1, 10}, at::kLong)).status().message(),
              HasSubstr("floating point"));
  EXPECT_THAT(model->Decode(at::full({1, 4, 2}, 128, at::kLong)).status().message(),
              HasSubstr("codes must be in [0, 128)"));
  EXPECT_THAT(model->Decode(at::zeros({1, 33, 2}, at::kLong)).status().message(), HasSubstr("33 codebooks"));
  EXPECT_THAT(model->Decode(at::zeros({1, 4, 2})).status().message(), HasSubstr("integers"));
  EXPECT_THAT(model->Decode(at::zeros({4, 2}, at::kLong)).status().message(),
              HasSubstr("[B, codebooks, frames]"));
  MimiStreamState state = model->NewState(2);
  EXPECT_THAT(model->EncodeStep(state, at::zeros({2, 1, 1000})).status().message(),
              HasSubstr("[2, 1, 1920]"));
  EXPECT_THAT(model->EncodeStep(state, at::zeros({1, 1, 1920})).status().message(),
              HasSubstr("[2, 1, 1920]"));
  EXPECT_THAT(model->DecodeStep(state, at::zeros({2, 8, 2}, at::kLong)).status().message(),
              HasSubstr("[2, K, 1]"));
  EXPECT_FALSE(model->Reset(state, at::ones({3}, at::kBool)).ok());
  EXPECT_FALSE(model->EncodeStep(state, at::zeros({2, 1, 1920}), at::ones({3}, at::kBool)).ok());
  // Offline encode pads to whole frames: ceil(L / 1920) frames.
  auto codes = model->Encode(at::zeros({2, 1, 1921}));
  ASSERT_TRUE(codes.ok());
  EXPECT_EQ(codes->sizes(), (std::vector<int64_t>{2, 32, 2}));
}

}  // namespace
}  // namespace monologue
