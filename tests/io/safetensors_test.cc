#include "core/io/safetensors.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace monologue {
namespace {

using ::testing::HasSubstr;

const std::string kData = std::string(MONOLOGUE_TEST_DATA_DIR) + "/io";

std::string TmpDir() {
  const char* env = std::getenv("MONOLOGUE_TEST_TMP");
  std::string dir = env != nullptr ? env : ".";
  return dir;
}

std::string TmpPath(const std::string& name) { return TmpDir() + "/" + name; }

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LengthPrefix(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);  // little-endian host (asserted in safetensors.cc)
  return s;
}

// A file made of a raw header text and `data_size` bytes of data.
std::string MakeFile(const std::string& header, size_t data_size = 0) {
  return LengthPrefix(header.size()) + header + std::string(data_size, '\x11');
}

// Bitwise comparison (works for every dtype, NaN and unsigned kinds included).
bool SameBytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.nbytes() == cb.nbytes() && std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

// The per-dtype [2, 3] pattern of tests/reference/make_safetensors_fixtures.py (i = 0..5).
at::Tensor Pattern(const std::string& name) {
  at::Tensor i = at::arange(6, at::kLong);
  at::Tensor v;
  at::ScalarType dtype = *SafeTensorsDtypeToTorch(name);
  if (name == "BOOL") {
    v = at::remainder(i, 2).eq(1);
  } else if (name == "F8_E8M0") {  // not in Python's table: raw exponent bytes
    v = (20 * i + 100).to(at::kByte).view(at::kFloat8_e8m0fnu);
  } else if (name[0] == 'U') {
    v = (40 * i + 3).to(dtype);
  } else if (name[0] == 'I') {
    v = (37 * i - 100).to(dtype);
  } else if (name == "C64") {
    v = at::complex(0.25 * i.to(at::kFloat) - 0.5, i.to(at::kFloat));
  } else {
    v = (0.25 * i.to(at::kDouble) - 0.5).to(dtype);
  }
  return v.reshape({2, 3});
}

const std::vector<std::string> kPythonDtypes = {"BOOL", "U8",  "I8",      "I16",    "U16",  "I32",
                                                "U32",  "I64", "U64",     "F16",    "BF16", "F32",
                                                "F64",  "C64", "F8_E4M3", "F8_E5M2"};

// Lines of /proc/self/maps whose address range holds `p`.
std::string MappingOf(const void* p) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && lo <= addr && addr < hi) return line;
  }
  return "";
}

bool FileIsMapped(const std::string& basename) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.ends_with("/" + basename)) return true;
  }
  return false;
}

template <typename T>
void ExpectInvalid(const absl::StatusOr<T>& result, const std::string& path,
                   const std::vector<std::string>& parts) {
  ASSERT_FALSE(result.ok()) << "expected an error for " << path;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  std::string message(result.status().message());
  EXPECT_THAT(message, HasSubstr(path));
  for (const std::string& part : parts) EXPECT_THAT(message, HasSubstr(part));
}

// Writes `bytes` to a fresh file and expects Open to fail with INVALID_ARGUMENT naming the file + parts.
void ExpectCorrupt(const std::string& name, const std::string& bytes, const std::vector<std::string>& parts) {
  const std::string path = TmpPath(name + ".safetensors");
  WriteBytes(path, bytes);
  ExpectInvalid(SafeTensorsFile::Open(path), path, parts);
}

// A valid single-tensor header with a replaceable entry body.
std::string OneTensor(const std::string& name, const std::string& body) {
  return "{\"" + name + "\":" + body + "}";
}

// ------------------------------------------------------------------------------------------------ reading

TEST(SafeTensorsTest, RoundTripEveryDtype) {
  std::vector<std::string> names = kPythonDtypes;
  names.push_back("F8_E8M0");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const std::string& name : names) tensors.emplace_back(name, Pattern(name));
  const std::string path = TmpPath("all_dtypes.safetensors");
  ASSERT_TRUE(WriteSafeTensors(path, tensors).ok());
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), names.size());
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    const SafeTensorInfo* info = (*file)->Find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, name);
    EXPECT_EQ(info->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(info->numel(), 6);
    auto t = (*file)->Load(name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->device(), at::kCPU);
    EXPECT_TRUE(SameBytes(*t, Pattern(name)));
  }
  // The file for tests/reference/make_safetensors_fixtures.py --check (Python reads what C++ writes).
  std::vector<std::pair<std::string, at::Tensor>> python_set;
  for (const std::string& name : kPythonDtypes) python_set.emplace_back(name, Pattern(name));
  ASSERT_TRUE(WriteSafeTensors(TmpPath("cpp_written_dtypes.safetensors"), python_set,
                               {{"format", "pt"}, {"writer", "monologue"}})
                  .ok());
}

TEST(SafeTensorsTest, ReadsFilesWrittenByPythonSafetensors) {
  const std::string path = kData + "/python_dtypes.safetensors";
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"writer", "python"}}));
  ASSERT_EQ((*file)->tensors().size(), kPythonDtypes.size());
  for (const std::string& name : kPythonDtypes) {
    SCOPED_TRACE(name);
    auto t = (*file)->Load(name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(SameBytes(*t, Pattern(name)));
  }
  EXPECT_FLOAT_EQ((*file)->Load("F32")->index({1, 2}).item<float>(), 0.75f);  // 0.25 * 5 - 0.5

  auto shapes = SafeTensorsFile::Open(kData + "/python_shapes.safetensors");
  ASSERT_TRUE(shapes.ok()) << shapes.status();
  EXPECT_TRUE((*shapes)->metadata().empty());
  std::vector<std::string> listed;
  for (const SafeTensorInfo& info : (*shapes)->tensors()) listed.push_back(info.name);
  EXPECT_EQ(listed, (std::vector<std::string>{"bias", "empty", "scalar", "vector", "weight"}));  // sorted
  at::Tensor scalar = *(*shapes)->Load("scalar");
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<float>(), 1.5f);
  at::Tensor empty = *(*shapes)->Load("empty");
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(at::equal(*(*shapes)->Load("vector"), at::tensor({-7, 3, 13, 23, 33}, at::kLong)));
  at::Tensor flat = at::arange(96, at::kFloat);
  EXPECT_TRUE(at::equal(*(*shapes)->Load("weight"), (0.125 * (flat - 40)).reshape({4, 8, 3})));
  EXPECT_TRUE(at::equal(*(*shapes)->Load("bias"), (0.5 * at::remainder(flat, 17) - 4).to(at::kBFloat16)));
}

TEST(SafeTensorsTest, LoadIsZeroCopyViewOfTheMapping) {
  const std::string path = kData + "/python_shapes.safetensors";
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  at::Tensor a = *(*file)->Load("weight");
  at::Tensor b = *(*file)->Load("weight");
  EXPECT_EQ(a.data_ptr(), b.data_ptr());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % alignof(float), 0u);
  // The tensor's bytes live in a mapping of the file itself.
  EXPECT_THAT(MappingOf(a.data_ptr()), HasSubstr("/python_shapes.safetensors"));
  EXPECT_THAT(MappingOf((*file)->Load("bias")->data_ptr()), HasSubstr("/python_shapes.safetensors"));
  EXPECT_TRUE(a.is_contiguous());
}

TEST(SafeTensorsTest, TensorOutlivesFileObject) {
  const std::string path = TmpPath("outlive.safetensors");
  at::Tensor expected = at::arange(1000, at::kFloat).reshape({10, 100});
  ASSERT_TRUE(WriteSafeTensors(path, {{"x", expected}}).ok());
  at::Tensor view;
  {
    auto file = SafeTensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    view = *(*file)->Load("x");
  }  // the file object is gone; the view keeps the mapping
  EXPECT_TRUE(FileIsMapped("outlive.safetensors"));
  EXPECT_TRUE(at::equal(view, expected));
  at::Tensor slice = view.index({at::indexing::Slice(2, 4)});
  view.reset();
  EXPECT_TRUE(at::equal(slice, expected.index({at::indexing::Slice(2, 4)})));  // shares the storage
  slice.reset();
  EXPECT_FALSE(FileIsMapped("outlive.safetensors"));  // last reference gone: unmapped, no leak
}

TEST(SafeTensorsTest, WritesThroughAViewDoNotTouchTheFile) {
  const std::string path = TmpPath("cow.safetensors");
  ASSERT_TRUE(WriteSafeTensors(path, {{"x", at::ones({4}, at::kFloat)}}).ok());
  const std::string before = ReadBytes(path);
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  (*file)->Load("x")->mul_(3);  // private copy-on-write mapping: no fault
  EXPECT_EQ(ReadBytes(path), before);
}

TEST(SafeTensorsTest, MetadataRoundTripAndHeaderPadding) {
  const std::string path = TmpPath("meta.safetensors");
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {"empty", ""},
                                             {"unicode", "d\xC3\xA9j\xC3\xA0 \xE2\x96\x81vu"},
                                             {"quote", "a\"b\\c\n"}};
  ASSERT_TRUE(WriteSafeTensors(path, {{"a", at::zeros({3}, at::kByte)}}, meta).ok());
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), meta);

  const std::string bytes = ReadBytes(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_size + 3);
  const std::string header = bytes.substr(8, header_size);
  const size_t end = header.rfind('}');
  EXPECT_EQ(header.find_first_not_of(' ', end + 1), std::string::npos);  // padded with spaces only
}

TEST(SafeTensorsTest, WriterMakesTensorsContiguousAndKeepsOrder) {
  const std::string path = TmpPath("order.safetensors");
  at::Tensor base = at::arange(12, at::kInt).reshape({3, 4});
  at::Tensor transposed = base.t();                                // non-contiguous
  at::Tensor expanded = at::arange(3, at::kShort).expand({2, 3});  // stride 0
  ASSERT_TRUE(WriteSafeTensors(path, {{"z_first", transposed}, {"a_second", expanded}}).ok());
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(at::equal(*(*file)->Load("z_first"), transposed));
  EXPECT_TRUE(at::equal(*(*file)->Load("a_second"), expanded));
  // Data in the given order: z_first (48 bytes) first.
  EXPECT_EQ((*file)->Find("z_first")->data_begin, 0u);
  EXPECT_EQ((*file)->Find("a_second")->data_begin, 48u);
  EXPECT_EQ((*file)->tensors().front().name, "a_second");  // listing sorted by name
}

TEST(SafeTensorsTest, WriterRejectsBadInputAndReplacesAtomically) {
  const std::string path = TmpPath("writer_errors.safetensors");
  std::filesystem::remove(path);  // left by an earlier run
  at::Tensor t = at::zeros({2});
  auto dup = WriteSafeTensors(path, {{"a", t}, {"a", t}});
  EXPECT_EQ(dup.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dup.message()), HasSubstr("\"a\""));
  EXPECT_EQ(WriteSafeTensors(path, {{"__metadata__", t}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteSafeTensors(path, {{"", t}}).code(), absl::StatusCode::kInvalidArgument);
  auto complex128 = WriteSafeTensors(path, {{"c", at::zeros({2}, at::kComplexDouble)}});
  EXPECT_EQ(complex128.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(complex128.message()), HasSubstr("\"c\""));
  EXPECT_FALSE(std::filesystem::exists(path));  // nothing written on error

  // Missing folders are created, as for every output (OutputFile); a folder that cannot be is named.
  ASSERT_TRUE(WriteSafeTensors(TmpPath("no/such/dir/x.safetensors"), {{"a", t}}).ok());
  EXPECT_TRUE(std::filesystem::exists(TmpPath("no/such/dir/x.safetensors")));
  const std::string under_a_file = TmpPath("no/such/dir/x.safetensors/y.safetensors");
  auto no_dir = WriteSafeTensors(under_a_file, {{"a", t}});
  EXPECT_FALSE(no_dir.ok());
  EXPECT_THAT(std::string(no_dir.message()), HasSubstr("cannot write " + under_a_file + ":"));
  EXPECT_THAT(std::string(no_dir.message()), ::testing::Not(HasSubstr(".tmp.")));  // the caller's name only
  auto directory = WriteSafeTensors(TmpDir(), {{"a", t}});
  EXPECT_EQ(directory.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(directory.message()), HasSubstr("it is a directory"));

  ASSERT_TRUE(WriteSafeTensors(path, {{"old", at::ones({100})}}).ok());
  auto old_file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(old_file.ok());
  at::Tensor old_view = *(*old_file)->Load("old");
  ASSERT_TRUE(WriteSafeTensors(path, {{"new", at::full({2}, 7.0)}}).ok());
  EXPECT_TRUE(at::equal(old_view, at::ones({100})));  // rename: the old mapping is untouched
  auto new_file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(new_file.ok());
  EXPECT_FALSE((*new_file)->Contains("old"));
  EXPECT_TRUE(at::equal(*(*new_file)->Load("new"), at::full({2}, 7.0)));
  for (const auto& entry : std::filesystem::directory_iterator(TmpDir())) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(HasSubstr(".tmp.")));
  }
}

TEST(SafeTensorsTest, EmptyFileOfTensorsRoundTrips) {
  const std::string path = TmpPath("no_tensors.safetensors");
  ASSERT_TRUE(WriteSafeTensors(path, {}, {{"k", "v"}}).ok());
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->tensors().empty());
  EXPECT_EQ((*file)->metadata().at("k"), "v");
}

TEST(SafeTensorsTest, MisalignedDataIsCopied) {
  // A 1-byte tensor first puts the F32 tensor at data offset 1 (legal, never written by safetensors).
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  float values[2] = {1.25f, -3.5f};
  std::string data(1, '\x07');
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string path = TmpPath("misaligned.safetensors");
  WriteBytes(path, LengthPrefix(header.size()) + header + data);
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  at::Tensor b = *(*file)->Load("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data_ptr()) % alignof(float), 0u);
  EXPECT_TRUE(at::equal(b, at::tensor({1.25f, -3.5f})));
  EXPECT_EQ((*file)->Load("a")->item<uint8_t>(), 7);
}

TEST(SafeTensorsTest, LoadTensorChecksDtypeAndShape) {
  const std::string path = kData + "/python_shapes.safetensors";
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(LoadTensor(**file, "weight", at::kFloat, std::vector<int64_t>{4, 8, 3}).ok());
  EXPECT_TRUE(LoadTensor(**file, "weight", std::nullopt, std::vector<int64_t>{4, -1, 3}).ok());
  ExpectInvalid(LoadTensor(**file, "weight", at::kBFloat16), path, {"\"weight\"", "F32", "expected BF16"});
  ExpectInvalid(LoadTensor(**file, "weight", at::kFloat, std::vector<int64_t>{4, 8}), path,
                {"\"weight\"", "[4, 8, 3]", "expected [4, 8]"});
  auto missing = LoadTensor(**file, "nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(SafeTensorsTest, MissingTensorIsNotFound) {
  const std::string path = kData + "/python_shapes.safetensors";
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Find("nope"), nullptr);
  EXPECT_FALSE((*file)->Contains("nope"));
  EXPECT_TRUE((*file)->Contains("bias"));
  auto t = (*file)->Load("nope");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("\"nope\""));
}

// --------------------------------------------------------------------------------------- corrupt files

TEST(SafeTensorsCorruptTest, MissingFileAndDirectory) {
  const std::string path = TmpPath("does_not_exist.safetensors");
  auto r = SafeTensorsFile::Open(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(path));
  ExpectInvalid(SafeTensorsFile::Open(TmpDir()), TmpDir(), {"not a regular file"});
}

TEST(SafeTensorsCorruptTest, ShorterThanEightBytes) {
  ExpectCorrupt("empty", "", {"0 bytes"});
  ExpectCorrupt("short", "abcde", {"5 bytes"});
}

TEST(SafeTensorsCorruptTest, HeaderLengthPastEndOfFile) {
  ExpectCorrupt("header_past_end", LengthPrefix(1000) + "{}", {"header length 1000", "past the end"});
}

TEST(SafeTensorsCorruptTest, OversizedHeader) {
  ExpectCorrupt("oversized", LengthPrefix(uint64_t{1} << 40) + "{}", {"oversized header"});
  ExpectCorrupt("oversized_max", LengthPrefix(UINT64_MAX) + "{}", {"oversized header"});
  ExpectCorrupt("oversized_101mb", LengthPrefix(101'000'000) + "{}", {"oversized header"});
}

TEST(SafeTensorsCorruptTest, HeaderNotJsonOrNotObject) {
  ExpectCorrupt("not_json", MakeFile("{\"a\": [1, 2"), {"not valid JSON"});
  ExpectCorrupt("garbage", MakeFile("\x89PNG\r\n\x1a\n"), {"not valid JSON"});
  ExpectCorrupt("array", MakeFile("[1, 2]  "), {"not a JSON object"});
  ExpectCorrupt("string", MakeFile("\"abc\"   "), {"not a JSON object"});
  ExpectCorrupt("entry_not_object", MakeFile(OneTensor("w", "5")), {"\"w\"", "not a JSON object"});
}

TEST(SafeTensorsCorruptTest, EntryMissingFields) {
  ExpectCorrupt("no_dtype", MakeFile(OneTensor("w", R"({"shape":[1],"data_offsets":[0,4]})"), 4),
                {"\"w\"", "missing \"dtype\""});
  ExpectCorrupt("no_shape", MakeFile(OneTensor("w", R"({"dtype":"F32","data_offsets":[0,4]})"), 4),
                {"\"w\"", "missing \"shape\""});
  ExpectCorrupt("no_offsets", MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[1]})"), 4),
                {"\"w\"", "missing \"data_offsets\""});
  ExpectCorrupt("dtype_not_string",
                MakeFile(OneTensor("w", R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})"), 4),
                {"\"w\"", "\"dtype\" is not a string"});
  ExpectCorrupt("shape_not_array",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":1,"data_offsets":[0,4]})"), 4),
                {"\"w\"", "\"shape\" is not an array"});
}

TEST(SafeTensorsCorruptTest, UnknownDtype) {
  ExpectCorrupt("unknown_dtype",
                MakeFile(OneTensor("enc.w", R"({"dtype":"F128","shape":[1],"data_offsets":[0,16]})"), 16),
                {"\"enc.w\"", "unknown dtype \"F128\""});
  ExpectCorrupt("lowercase_dtype",
                MakeFile(OneTensor("w", R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})"), 4),
                {"\"w\"", "unknown dtype \"f32\""});
  ExpectCorrupt("subbyte_dtype",
                MakeFile(OneTensor("w", R"({"dtype":"F4","shape":[2],"data_offsets":[0,1]})"), 1),
                {"\"w\"", "unsupported sub-byte dtype \"F4\""});
}

TEST(SafeTensorsCorruptTest, BadDimensions) {
  ExpectCorrupt("negative_dim",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]})"), 24),
                {"\"w\"", "negative dimension -2"});
  ExpectCorrupt("float_dim",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})"), 8),
                {"\"w\"", "non-integer"});
  ExpectCorrupt(
      "huge_dims",
      MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})"), 8),
      {"\"w\"", "too large"});
}

TEST(SafeTensorsCorruptTest, OffsetsMalformedOrReversed) {
  ExpectCorrupt("offsets_one",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[1],"data_offsets":[0]})"), 4),
                {"\"w\"", "two non-negative integers"});
  ExpectCorrupt("offsets_negative",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), 4),
                {"\"w\"", "two non-negative integers"});
  ExpectCorrupt("offsets_reversed",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[1],"data_offsets":[4,0]})"), 4),
                {"\"w\"", "end before they begin"});
}

TEST(SafeTensorsCorruptTest, OffsetsNotMatchingShape) {
  ExpectCorrupt("size_mismatch",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})"), 4),
                {"\"w\"", "span 4 bytes", "needs 8"});
  ExpectCorrupt("size_mismatch_bf16",
                MakeFile(OneTensor("w", R"({"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]})"), 16),
                {"\"w\"", "span 16 bytes", "needs 8"});
}

TEST(SafeTensorsCorruptTest, OverlappingGapsAndTrailingBytes) {
  ExpectCorrupt("overlap",
                MakeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         12),
                {"\"b\"", "overlap tensor \"a\""});
  ExpectCorrupt("gap",
                MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                         12),
                {"\"b\"", "gap of 4"});
  ExpectCorrupt("not_from_zero",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"), 8),
                {"\"w\"", "gap of 4"});
  ExpectCorrupt("trailing",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), 10),
                {"6 trailing bytes"});
}

TEST(SafeTensorsCorruptTest, TruncatedFile) {
  ExpectCorrupt("past_end",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"), 10),
                {"\"w\"", "past the end", "truncated"});
  // A real file cut short: its last tensor ("bias", written last by Python) no longer fits.
  std::string real = ReadBytes(kData + "/python_shapes.safetensors");
  ASSERT_GT(real.size(), 100u);
  ExpectCorrupt("real_truncated", real.substr(0, real.size() - 10), {"\"bias\"", "truncated"});
  ExpectCorrupt("real_header_cut", real.substr(0, 40), {"past the end of the file"});
}

// torch.save's output, which the reference's loader reads for any suffix but .safetensors/.sft/.sfts: named
// as a PyTorch pickle with the way to convert it. A real header whose length starts with the same bytes still
// loads.
TEST(SafeTensorsCorruptTest, PyTorchPicklesAreNamedAsSuch) {
  const std::string zip =
      std::string("PK\x03\x04\x00\x00\x08\x00", 8) + "archive/data.pkl" + std::string(64, '\0');
  ExpectCorrupt("torch_save_zip", zip, {"a PyTorch pickle (torch.save)", "fsdp_best_state", "save_file"});
  const std::string legacy =
      std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8", 12) + std::string(64, 'x');
  ExpectCorrupt("torch_save_legacy", legacy, {"a PyTorch pickle (torch.save)"});
  // A header of 0x280 bytes: the file starts 0x80 0x02 like a protocol-2 pickle, and is a safetensors file.
  std::string header = OneTensor("w", R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})");
  header += std::string(0x280 - header.size(), ' ');
  const std::string path = TmpPath("header_0x280.safetensors");
  WriteBytes(path, MakeFile(header, 4));
  auto file = SafeTensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE((*file)->Contains("w"));
}

TEST(SafeTensorsCorruptTest, DuplicateNames) {
  ExpectCorrupt("duplicate",
                MakeFile(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         8),
                {"\"w\"", "more than once"});
}

TEST(SafeTensorsCorruptTest, MetadataNotStrings) {
  ExpectCorrupt("meta_number", MakeFile(R"({"__metadata__":{"format":"pt","step":125}})"),
                {"__metadata__", "\"step\"", "not a string"});
  ExpectCorrupt("meta_nested", MakeFile(R"({"__metadata__":{"cfg":{"a":"b"}}})"),
                {"\"cfg\"", "not a string"});
  ExpectCorrupt("meta_not_object", MakeFile(R"({"__metadata__":["a"]})"),
                {"__metadata__", "not a JSON object"});
}

TEST(SafeTensorsCorruptTest, RandomAndHostileHeadersDoNotCrash) {
  std::mt19937_64 rng(1234);
  // 1 MB of random bytes as the header.
  std::string noise(1 << 20, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  ExpectCorrupt("random_header", MakeFile(noise), {});
  // Deeply nested JSON (recursive parsers or printers would overflow the stack).
  ExpectCorrupt("nested_array", MakeFile(std::string(500000, '[') + std::string(500000, ']')),
                {"not a JSON object"});
  ExpectCorrupt("nested_offsets",
                MakeFile(OneTensor("w", R"({"dtype":"F32","shape":[1],"data_offsets":)" +
                                            std::string(200000, '[') + std::string(200000, ']') + "}")),
                {"\"w\"", "data_offsets"});
}

TEST(SafeTensorsCorruptTest, MutatedHeadersFailCleanlyOrLoad) {
  const std::string real = ReadBytes(kData + "/python_shapes.safetensors");
  uint64_t header_size = 0;
  std::memcpy(&header_size, real.data(), 8);
  std::mt19937_64 rng(99);
  const std::string path = TmpPath("mutated.safetensors");
  const std::string alphabet = "{}[]\",:0123456789-. eFIU";
  int opened = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = real;
    for (int k = 0; k < 3; ++k) bytes[8 + rng() % header_size] = alphabet[rng() % alphabet.size()];
    WriteBytes(path, bytes);
    auto file = SafeTensorsFile::Open(path);
    if (!file.ok()) {
      EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
      EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
      continue;
    }
    ++opened;
    for (const SafeTensorInfo& info : (*file)->tensors()) {
      auto t = (*file)->Load(info.name);
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_EQ(static_cast<uint64_t>(t->nbytes()), info.data_end - info.data_begin);
      (void)t->clone();  // touch every byte
    }
  }
  EXPECT_LT(opened, 300);  // the mutations do break files
}

}  // namespace
}  // namespace monologue
