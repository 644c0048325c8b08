#include "cli/bench_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace monologue::cli {
namespace {

struct Totals {
  double self_ns = 0, total_ns = 0;
  int64_t calls = 0;
};

struct Span {
  uint64_t start, end;
  std::string name;
};

// Runs `body` under the CPU profiler and returns what it recorded.
std::unique_ptr<torch::autograd::profiler::ProfilerResult> Profile(const std::function<void()>& body) {
  namespace prof = torch::autograd::profiler;
  const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<torch::profiler::impl::ActivityType> activities{torch::profiler::impl::ActivityType::CPU};
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  body();
  return prof::disableProfiler();
}

}  // namespace

void InitializeProfiler() {
  static const bool initialized = [] {
    Profile([] {});
    std::fflush(stderr);
    return true;
  }();
  (void)initialized;
}

void ProfileAndPrint(const std::function<void()>& body, int iterations, int top) {
  InitializeProfiler();
  const auto result = Profile(body);

  // Self time per thread: events nest by time, so a stack of open spans gives each span's direct children.
  std::map<uint64_t, std::vector<Span>> by_thread;
  for (const auto& e : result->events()) {
    if (e.isAsync() || e.durationNs() == 0) continue;
    by_thread[e.startThreadId()].push_back({e.startNs(), e.endNs(), e.name()});
  }
  std::map<std::string, Totals> totals;
  double wall_ns = 0;
  for (auto& [tid, spans] : by_thread) {
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
      return a.start != b.start ? a.start < b.start : a.end > b.end;
    });
    std::vector<std::pair<const Span*, double>> open;  // span, time of its direct children
    auto close = [&](const Span* s, double children) {
      Totals& t = totals[s->name];
      const double d = static_cast<double>(s->end - s->start);
      t.total_ns += d;
      t.self_ns += d - children;
      ++t.calls;
      if (!open.empty()) open.back().second += d;
      else wall_ns += d;
    };
    for (const Span& s : spans) {
      while (!open.empty() && open.back().first->end <= s.start) {
        auto [done, children] = open.back();
        open.pop_back();
        close(done, children);
      }
      open.emplace_back(&s, 0.0);
    }
    while (!open.empty()) {
      auto [done, children] = open.back();
      open.pop_back();
      close(done, children);
    }
  }
  std::vector<std::pair<std::string, Totals>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.self_ns > b.second.self_ns; });
  const double per = 1e6 * iterations;  // ns -> ms per step
  std::printf("profile (per step; self = not in nested ops; top-level spans %.2f ms):\n", wall_ns / per);
  std::printf("  %-44s %9s %9s %8s\n", "op or scope", "self ms", "total ms", "calls");
  for (size_t i = 0; i < rows.size() && static_cast<int>(i) < top; ++i) {
    const Totals& t = rows[i].second;
    std::printf("  %-44s %9.3f %9.3f %8.1f\n", rows[i].first.substr(0, 44).c_str(), t.self_ns / per,
                t.total_ns / per, static_cast<double>(t.calls) / iterations);
  }
}

}  // namespace monologue::cli
