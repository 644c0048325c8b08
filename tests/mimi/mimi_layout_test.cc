// Mimi saved in the reference's state_dict naming (`self_attn.in_projs.0.weight` / `out_projs.0.weight`,
// tests/reference/make_layout_fixtures.py) loads and gives exactly the codes and audio of the released
// naming (tiny_mimi.safetensors), and matches the reference's goldens the same way.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "core/io/checkpoint_view.h"
#include "core/mimi/mimi_loader.h"
#include "core/model/checkpoint_schema.h"
#include "tests/mimi/mimi_test_util.h"

namespace monologue {
namespace {

std::string StateDictPath() {
  return std::string(MONOLOGUE_TEST_DATA_DIR) + "/layouts/mimi_state_dict.safetensors";
}

TEST(MimiLayoutTest, StateDictNamingGivesTheReleasedCodesAndAudio) {
  auto config = mimi_test::TinyConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  auto released = LoadMimiFile(mimi_test::DataPath("tiny_mimi.safetensors"), *config);
  ASSERT_TRUE(released.ok()) << released.status();
  auto renamed = LoadMimiFile(StateDictPath(), *config);
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  auto cases = SafeTensorsFile::Open(mimi_test::DataPath("tiny_cases.safetensors"));
  ASSERT_TRUE(cases.ok()) << cases.status();
  const at::Tensor pcm = mimi_test::Fixture(**cases, "input_a_cut");
  for (int n : {8, 32}) {
    ASSERT_TRUE(released->SetNumCodebooks(n).ok());
    ASSERT_TRUE(renamed->SetNumCodebooks(n).ok());
    auto a = released->Encode(pcm);
    auto b = renamed->Encode(pcm);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(at::equal(*a, *b)) << n << " codebooks";
    EXPECT_GE(
        mimi_test::Agreement(*b, mimi_test::Fixture(**cases, "offline_codes" + std::to_string(n) + "_a_cut")),
        0.999);
    auto da = released->Decode(*a);
    auto db = renamed->Decode(*b);
    ASSERT_TRUE(da.ok() && db.ok());
    EXPECT_TRUE(at::equal(*da, *db));
  }
}

TEST(MimiLayoutTest, ViewReportsTheLayoutAndValidationListsBrokenSets) {
  auto view = CheckpointView::Open(StateDictPath());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ((*view)->LayoutSummary(), "per-step (in_projs.{i}.weight, out_projs.{i}.weight)");
  const std::string fused = "encoder_transformer.transformer.layers.0.self_attn.in_proj_weight";
  ASSERT_NE((*view)->Find(fused), nullptr);
  EXPECT_EQ((*view)->SourceNames(fused),
            std::vector<std::string>{"encoder_transformer.transformer.layers.0.self_attn.in_projs.0.weight"});
  auto config = mimi_test::TinyConfig();
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(ValidateCheckpoint(**view, ExpectedMimiTensors(*config)).ok());
  auto released = CheckpointView::Open(mimi_test::DataPath("tiny_mimi.safetensors"));
  ASSERT_TRUE(released.ok());
  EXPECT_EQ((*released)->LayoutSummary(), "released (in_proj_weight, out_proj.weight)");
}

}  // namespace
}  // namespace monologue
