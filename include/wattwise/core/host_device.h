#pragma once
// Marks small inline functions (RNG, dtype conversion) that both CPU kernels and CUDA kernels call,
// so the two backends share one definition and give bit-identical results.
#if defined(__CUDACC__)
#define WW_HOST_DEVICE __host__ __device__
#else
#define WW_HOST_DEVICE
#endif
