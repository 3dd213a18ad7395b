// Trace output: CSV with the columns
//   epoch,samples,seconds,loss,suboptimality,grad_norm2,test_accuracy,bits
// (empty where unknown), written to a temporary name and renamed into place.
#pragma once
#include <string>
#include <vector>

#include "memsgd/atomic_file.hpp"
#include "memsgd/train.hpp"

namespace memsgd {

inline constexpr const char* kTraceHeader =
    "epoch,samples,seconds,loss,suboptimality,grad_norm2,test_accuracy,bits";

std::string TraceCsvRow(const TracePoint& p);
void WriteTraceCsv(const std::vector<TracePoint>& trace, const std::string& path);

}  // namespace memsgd
