#pragma once
// What the process-group backends share inside src/dist.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "wattwise/dist/process_group.h"
#include "wattwise/dist/store.h"

namespace ww::dist {

bool is_loopback(const std::string& host);  // "127.0.0.1", "localhost", "::1"
std::string first_line(const std::string& text);
// all_gather and reduce_scatter_sum part sizes, checked against the group and the tensor.
std::vector<size_t> checked_parts(const Tensor& full, const std::vector<int64_t>& counts, int ranks);

// Each takes the joined rendezvous and keeps it for its lifetime (rank 0 serves it).
std::unique_ptr<ProcessGroup> make_gloo_group(const World& world, std::unique_ptr<TcpStore> store,
                                              std::chrono::milliseconds timeout);
#ifdef WW_HAVE_CUDA
std::unique_ptr<ProcessGroup> make_nccl_group(const World& world, Device device, std::unique_ptr<TcpStore> store,
                                              std::chrono::milliseconds timeout);
#endif

}  // namespace ww::dist
