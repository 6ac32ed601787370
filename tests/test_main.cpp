#include <gtest/gtest.h>

#include "kernels/cpu/blas_setup.h"

int main(int argc, char** argv) {
  ww::kernels::cpu::reexec_with_fast_runtime_if_needed(argv);  // same BLAS kernels as the CLI
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
