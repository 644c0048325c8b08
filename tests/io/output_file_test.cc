// OutputFile: what an output path holds decides how it is written (a temporary renamed over a regular file,
// the path itself for devices, FIFOs and hard-linked files), and a run that fails or is interrupted leaves
// the path as it was. The audit that found the old behaviour: `synthesize -o /dev/full` replaced /dev/full
// with a plain file (as root), and a symlinked output lost its link.
#include "core/io/output_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace monologue {
namespace {

namespace fs = std::filesystem;

fs::path Dir(const std::string& name) {
  const char* base = std::getenv("MONOLOGUE_TEST_TMP");
  fs::path dir = fs::path(base != nullptr ? base : ".") / "output_file_test" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string Read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void Put(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// Entries of `dir` other than `keep` (left-over temporaries).
int OtherEntries(const fs::path& dir, const std::set<std::string>& keep) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += keep.count(e.path().filename().string()) ? 0 : 1;
  return n;
}

TEST(OutputFileTest, ARegularFileIsReplacedOnlyOnCommitAndKeepsItsPermissions) {
  const fs::path dir = Dir("regular");
  const fs::path out = dir / "out.txt";
  Put(out, "old");
  ::chmod(out.c_str(), 0600);
  auto file = OutputFile::Prepare(out.string());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE(file->in_place());
  EXPECT_NE(file->write_path(), out.string());
  Put(file->write_path(), "new");
  EXPECT_EQ(Read(out), "old");  // not before Commit
  ASSERT_TRUE(file->Commit().ok());
  EXPECT_EQ(Read(out), "new");
  struct stat st;
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(OtherEntries(dir, {"out.txt"}), 0);
}

TEST(OutputFileTest, AbandonedOrDestroyedWithoutCommitLeavesWhatWasThere) {
  const fs::path dir = Dir("abandon");
  const fs::path out = dir / "out.txt";
  Put(out, "old");
  {
    auto file = OutputFile::Prepare(out.string());
    ASSERT_TRUE(file.ok());
    Put(file->write_path(), "half");
  }
  EXPECT_EQ(Read(out), "old");
  EXPECT_EQ(OtherEntries(dir, {"out.txt"}), 0);
  // A new file: nothing appears under its name until Commit (kTemporary), or it is removed (kInPlace).
  {
    auto file = OutputFile::Prepare((dir / "new.txt").string());
    ASSERT_TRUE(file.ok());
    EXPECT_FALSE(fs::exists(dir / "new.txt"));
  }
  {
    auto file = OutputFile::Prepare((dir / "new.txt").string(), OutputFile::NewFile::kInPlace);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file->write_path(), (dir / "new.txt").string());
    EXPECT_TRUE(fs::exists(dir / "new.txt"));
    file->Abandon();
    EXPECT_FALSE(fs::exists(dir / "new.txt"));
  }
  EXPECT_EQ(OtherEntries(dir, {"out.txt"}), 0);
}

TEST(OutputFileTest, ASymlinkIsFollowedAndStays) {
  const fs::path dir = Dir("symlink");
  Put(dir / "target.txt", "old");
  fs::create_symlink("target.txt", dir / "link.txt");
  ASSERT_TRUE(WriteFileReplacing((dir / "link.txt").string(), "new").ok());
  EXPECT_TRUE(fs::is_symlink(dir / "link.txt"));
  EXPECT_EQ(Read(dir / "target.txt"), "new");
  // A dangling link: its target is created.
  fs::create_symlink("later.txt", dir / "dangling.txt");
  ASSERT_TRUE(WriteFileReplacing((dir / "dangling.txt").string(), "x").ok());
  EXPECT_TRUE(fs::is_symlink(dir / "dangling.txt"));
  EXPECT_EQ(Read(dir / "later.txt"), "x");
}

TEST(OutputFileTest, DevicesFifosAndHardLinkedFilesAreWrittenInPlace) {
  const fs::path dir = Dir("special");
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0644), 0);
  auto fifo = OutputFile::Prepare((dir / "pipe").string());
  ASSERT_TRUE(fifo.ok());
  EXPECT_TRUE(fifo->in_place());
  EXPECT_EQ(fifo->write_path(), (dir / "pipe").string());
  ASSERT_TRUE(fifo->Commit().ok());
  EXPECT_TRUE(fs::is_fifo(dir / "pipe"));

  struct stat st;
  if (::stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)) {
    auto null = OutputFile::Prepare("/dev/null");
    ASSERT_TRUE(null.ok());
    ASSERT_TRUE(null->in_place());  // checked before anything is written there
    ASSERT_TRUE(WriteFileReplacing("/dev/null", "discarded").ok());
    ASSERT_EQ(::stat("/dev/null", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
  if (::stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode)) {
    ASSERT_TRUE(OutputFile::Prepare("/dev/full")->in_place());
    absl::Status full = WriteFileReplacing("/dev/full", "x");
    EXPECT_FALSE(full.ok());
    EXPECT_NE(full.message().find("cannot write /dev/full"), std::string::npos) << full;
    ASSERT_EQ(::stat("/dev/full", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }

  Put(dir / "a.txt", "old");
  fs::create_hard_link(dir / "a.txt", dir / "b.txt");
  ASSERT_TRUE(WriteFileReplacing((dir / "a.txt").string(), "new").ok());
  EXPECT_EQ(Read(dir / "b.txt"), "new");  // still the same file
  EXPECT_EQ(fs::hard_link_count(dir / "a.txt"), 2u);
}

TEST(OutputFileTest, ADirectoryIsRefusedAndMissingFoldersAreCreated) {
  const fs::path dir = Dir("folders");
  auto d = OutputFile::Prepare(dir.string());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("it is a directory"), std::string::npos) << d.status();
  ASSERT_TRUE(WriteFileReplacing((dir / "a" / "b" / "c.txt").string(), "x").ok());
  EXPECT_EQ(Read(dir / "a" / "b" / "c.txt"), "x");
}

TEST(OutputFileTest, CheckWritableLeavesNothingBehind) {
  const fs::path dir = Dir("check");
  EXPECT_TRUE(CheckWritable((dir / "new.wav").string()).ok());
  Put(dir / "old.wav", "old");
  EXPECT_TRUE(CheckWritable((dir / "old.wav").string()).ok());
  EXPECT_EQ(Read(dir / "old.wav"), "old");
  EXPECT_EQ(OtherEntries(dir, {"old.wav"}), 0);
  absl::Status under_a_file = CheckWritable((dir / "old.wav" / "x.wav").string());
  EXPECT_FALSE(under_a_file.ok());
  EXPECT_NE(under_a_file.message().find("cannot write " + (dir / "old.wav" / "x.wav").string()),
            std::string::npos)
      << under_a_file;
}

TEST(OutputFileTest, AnInterruptedRunRemovesItsTemporaries) {
  const fs::path dir = Dir("signal");
  Put(dir / "out.txt", "old");
  for (int sig : {SIGINT, SIGTERM}) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto file = OutputFile::Prepare((dir / "out.txt").string());
      if (!file.ok()) ::_exit(3);
      Put(file->write_path(), "half");
      ::raise(sig);
      ::_exit(4);  // not reached: the handler re-raises with the default action
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_EQ(WTERMSIG(status), sig);
    EXPECT_EQ(Read(dir / "out.txt"), "old");
    EXPECT_EQ(OtherEntries(dir, {"out.txt"}), 0) << "signal " << sig;
  }
}

}  // namespace
}  // namespace monologue
