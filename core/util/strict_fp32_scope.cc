#include "core/util/strict_fp32_scope.h"

namespace monologue {

StrictFp32Scope::StrictFp32Scope(bool active) {
  if (!active) return;
  cublas_.emplace();
  restore_cudnn_ = at::globalContext().allowTF32CuDNN();
  if (restore_cudnn_) at::globalContext().setAllowTF32CuDNN(false);
}

StrictFp32Scope::~StrictFp32Scope() {
  if (restore_cudnn_) at::globalContext().setAllowTF32CuDNN(true);
}

}  // namespace monologue
