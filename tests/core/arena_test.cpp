// Arena: alignment, counting and overflow of the activation arena.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <set>
#include <vector>

#include "wattwise/core/arena.h"
#include "wattwise/core/dtype.h"
#include "wattwise/core/rng.h"
#include "wattwise/core/tensor.h"
#include "test_util.h"

using namespace ww;

TEST(Arena, AlignsCountsAndOverflows) {
  Arena counting = Arena::counting(Device::cpu());
  counting.alloc({3}, DType::F32);
  counting.alloc({5}, DType::F32);
  EXPECT_EQ(counting.peak(), 2 * Arena::kAlignment);
  Arena arena(counting.peak(), Device::cpu());
  Tensor a = arena.alloc({3}, DType::F32);
  Tensor b = arena.alloc({5}, DType::F32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.raw()) % Arena::kAlignment, 0u);
  EXPECT_EQ(static_cast<char*>(b.raw()) - static_cast<char*>(a.raw()), Arena::kAlignment);
  EXPECT_THROW(arena.alloc({1}, DType::F32), OutOfMemoryError);
  arena.reset();
  EXPECT_EQ(arena.alloc({1}, DType::F32).raw(), a.raw());
}
