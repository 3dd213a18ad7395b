#include "memsgd/trace_io.hpp"

#include <cmath>
#include <cstdio>

namespace memsgd {

namespace {
std::string Num(double v) {
  if (std::isnan(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}
}  // namespace

std::string TraceCsvRow(const TracePoint& p) {
  return Num(p.epoch) + "," + std::to_string(p.samples) + "," + Num(p.seconds) + "," +
         Num(p.loss) + "," + Num(p.suboptimality) + "," + Num(p.grad_norm2) + "," +
         Num(p.test_accuracy) + "," + Num(p.bits);
}

void WriteTraceCsv(const std::vector<TracePoint>& trace, const std::string& path) {
  std::string out = std::string(kTraceHeader) + "\n";
  for (const auto& p : trace) out += TraceCsvRow(p) + "\n";
  WriteFileAtomically(path, out);
}

}  // namespace memsgd
