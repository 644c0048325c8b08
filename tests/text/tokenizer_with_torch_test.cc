// The tokenizer and libtorch in one process, as the STT/TTS pipelines use them: sentencepiece brings the
// system protobuf-lite, the torch wheel its own copy; both must load and work side by side.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/text/text_tokenizer.h"

namespace monologue {
namespace {

TEST(TokenizerWithTorchTest, TokenIdsThroughTensorsAndSafetensors) {
  auto tok = TextTokenizer::Load(std::string(MONOLOGUE_TEST_DATA_DIR) + "/tokenizers/tiny_en_fr_400.model");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int> ids = (*tok)->Encode("Bonjour tout le monde, hello world.");
  ASSERT_FALSE(ids.empty());
  at::Tensor t = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
  const char* tmp = std::getenv("MONOLOGUE_TEST_TMP");
  const std::string path = std::string(tmp != nullptr ? tmp : ".") + "/ids.safetensors";
  ASSERT_TRUE(WriteSafeTensors(path, {{"ids", t}}, {{"tokenizer", (*tok)->name()}}).ok());
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  at::Tensor back = *(*file)->Load("ids");
  std::vector<int> round(back.data_ptr<int64_t>(), back.data_ptr<int64_t>() + back.numel());
  auto text = (*tok)->Decode(round);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "Bonjour tout le monde, hello world.");
}

}  // namespace
}  // namespace monologue
