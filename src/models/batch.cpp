#include "wattwise/core/error.h"
#include "wattwise/models/model.h"

namespace ww::models {

Batch slice_rows(const Batch& batch, int64_t begin, int64_t end) {
  const int64_t rows = batch.input_ids.size(0);
  WW_CHECK(0 <= begin && begin <= end && end <= rows, "rows [", begin, ", ", end, ") of a batch of ", rows);
  auto part = [&](const Tensor& t) { return t.defined() ? t.slice(begin, end) : Tensor(); };
  return {part(batch.input_ids), part(batch.attention_mask), part(batch.token_type_ids), part(batch.labels)};
}

int64_t loss_terms(const Batch& batch) {
  const Tensor& labels = batch.labels;
  if (!labels.defined()) return 0;
  if (labels.dim() == 1) return labels.size(0);
  WW_CHECK(labels.dim() == 2 && labels.dtype() == DType::I32, "language-modelling labels are i32 [B, T], got ",
           labels.describe());
  const Tensor host = labels.device().is_cpu() ? labels : labels.to(Device::cpu());
  const int64_t rows = host.size(0), length = host.size(1);
  const int32_t* l = host.data<int32_t>();
  int64_t scored = 0;
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t t = 1; t < length; ++t) scored += l[b * length + t] != -100;
  return scored;
}

}  // namespace ww::models
