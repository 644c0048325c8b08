// Float32 matmuls and convolutions without TF32 for the span of a scope, for code whose numerics must match
// an fp32 reference (Mimi: the reference runs its codec without TF32), instead of switching TF32 off for the
// whole process: an LM in bf16 or with TF32 allowed keeps its setting outside the scope.
//
// cuBLAS: at::NoTF32Guard, thread-local. cuDNN has no thread-local switch: its global flag is saved, cleared
// and restored, so a cuDNN convolution that another thread runs meanwhile also runs without TF32 (more
// precise, never less). Inactive (no effect at all) for CPU models.
#pragma once

#include <ATen/Context.h>

#include <optional>

namespace monologue {

class StrictFp32Scope {
 public:
  explicit StrictFp32Scope(bool active);
  ~StrictFp32Scope();
  StrictFp32Scope(const StrictFp32Scope&) = delete;
  StrictFp32Scope& operator=(const StrictFp32Scope&) = delete;

 private:
  std::optional<at::NoTF32Guard> cublas_;
  bool restore_cudnn_ = false;
};

}  // namespace monologue
