#include "core/util/huge_pages.h"

#include <ATen/ATen.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <utility>

#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace monologue {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;
// Tensors up to half of this share mappings; a 256 MB mapping wastes at most the unused part of the one huge
// page its last tensor ends in (< 1%), and untouched pages are never backed.
constexpr size_t kArenaMapping = size_t{256} << 20;
constexpr size_t kAlignment = 64;  // a cache line, and at least what every kernel's vector loads want

std::atomic<bool> enabled{true};

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// The base page size: mapping lengths and trims must be multiples of it.
size_t SmallPage() {
#ifdef __linux__
  static const size_t page = [] {
    const long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<size_t>(p) : size_t{4096};
  }();
  return page;
#else
  return 4096;
#endif
}

// An anonymous read-write mapping of `size` bytes (a multiple of 4 KB) starting on a 2 MB boundary, advised
// for huge pages (the kernel uses them for the whole 2 MB ranges in it); unmapped when the last owner lets
// go.
class Mapping {
 public:
  static std::shared_ptr<Mapping> Create(size_t size) {
#ifdef __linux__
    // Over-map by one huge page and trim both ends to land on a 2 MB boundary (mmap itself only promises
    // 4 KB alignment).
    const size_t span = size + kHugePage;
    void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const uintptr_t raw_start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t start = RoundUp(raw_start, kHugePage);
    const size_t head = start - raw_start, tail = span - head - size;
    if (head > 0) ::munmap(raw, head);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(start + size), tail);
    // Refused (THP "never", or a kernel without THP): the mapping keeps 4 KB pages and still serves.
    (void)::madvise(reinterpret_cast<void*>(start), size, MADV_HUGEPAGE);
    return std::shared_ptr<Mapping>(new Mapping(reinterpret_cast<uint8_t*>(start), size));
#else
    (void)size;
    return nullptr;
#endif
  }

  ~Mapping() {
#ifdef __linux__
    ::munmap(base_, size_);
#endif
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }

 private:
  Mapping(uint8_t* base, size_t size) : base_(base), size_(size) {}
  uint8_t* base_;
  size_t size_;
};

// The mapping now being carved. Held weakly: once every tensor in it is freed it is unmapped, and the next
// placement opens a new one, so a process that drops its model gives the memory back.
class Arena {
 public:
  // `bytes` from a mapping, with the mapping that owns them; {nullptr, nullptr} when mmap fails.
  std::pair<void*, std::shared_ptr<Mapping>> Allocate(size_t bytes, bool own_mapping) {
    const size_t n = RoundUp(std::max<size_t>(bytes, 1), kAlignment);
    if (own_mapping || n > kArenaMapping / 2) {
      std::shared_ptr<Mapping> own = Mapping::Create(RoundUp(n, SmallPage()));
      return {own ? own->base() : nullptr, own};
    }
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<Mapping> mapping = current_.lock();
    if (!mapping || used_ + n > mapping->size()) {
      mapping = Mapping::Create(kArenaMapping);
      if (!mapping) return {nullptr, nullptr};
      current_ = mapping;
      used_ = 0;
    }
    void* p = mapping->base() + used_;
    used_ += n;
    return {p, mapping};
  }

 private:
  std::mutex mutex_;
  std::weak_ptr<Mapping> current_;
  size_t used_ = 0;
};

Arena& TheArena() {
  static Arena* arena = new Arena();  // never destroyed: tensors may outlive static destruction
  return *arena;
}

}  // namespace

void SetHugePagesEnabled(bool on) { enabled = on; }
bool HugePagesEnabled() { return enabled; }

at::Tensor EmptyOnHugePages(at::IntArrayRef sizes, const at::TensorOptions& options, bool own_mapping) {
  if (!enabled || !options.device().is_cpu() || options.layout() != at::kStrided) {
    return at::empty(sizes, options);
  }
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes =
      static_cast<size_t>(numel) * at::elementSize(at::typeMetaToScalarType(options.dtype()));
  // A buffer of its own under 2 MB would get no huge page at all.
  if (bytes == 0 || (own_mapping && bytes < kHugePage)) return at::empty(sizes, options);
  auto [data, owner] = TheArena().Allocate(bytes, own_mapping);
  if (data == nullptr) return at::empty(sizes, options);
  // The deleter holds the mapping: it is unmapped with the last tensor carved from it.
  return at::from_blob(
      data, sizes, [owner = std::move(owner)](void*) {}, options);
}

at::Tensor PlaceOnHugePages(const at::Tensor& t, bool own_mapping) {
  if (!enabled || !t.defined() || !t.device().is_cpu() || t.layout() != at::kStrided || t.numel() == 0) {
    return t.contiguous();
  }
  at::Tensor out = EmptyOnHugePages(t.sizes(), t.options(), own_mapping);
  out.copy_(t);
  return out;
}

int64_t AnonHugePageBytes() {
  std::FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
  if (f == nullptr) return -1;
  char line[256];
  int64_t kb = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    long long value = 0;
    if (std::sscanf(line, "AnonHugePages: %lld kB", &value) == 1) {
      kb = value;
      break;
    }
  }
  std::fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

}  // namespace monologue
