// CompressorSpec (parsed from the command line) and the Compressor's construction: the dispatch
// on the kind (VisitKind) that the operators' static members answer.
#include <cmath>
#include <stdexcept>

#include "memsgd/compressor.hpp"

namespace memsgd {

CompressorSpec CompressorSpec::FromName(const std::string& name, double k, bool scaled,
                                        int qsgd_bits) {
  CompressorSpec s;
  s.k = k;
  s.scaled = scaled;
  s.qsgd_bits = qsgd_bits;
  if (name == "identity" || name == "none") {
    s.kind = CompressorKind::kIdentity;
  } else if (name == "top" || name == "top-k" || name == "topk") {
    s.kind = k < 1 ? CompressorKind::kUltraSparse : CompressorKind::kTopK;
  } else if (name == "rand" || name == "rand-k" || name == "randk") {
    s.kind = k < 1 ? CompressorKind::kUltraSparse : CompressorKind::kRandK;
  } else if (name == "qsgd") {
    s.kind = CompressorKind::kQsgd;
  } else {
    throw std::invalid_argument("unknown compressor '" + name +
                                "' (supported: top, rand, identity, qsgd)");
  }
  if (s.kind != CompressorKind::kIdentity && s.kind != CompressorKind::kQsgd &&
      !(k > 0 && std::isfinite(k))) {
    throw std::invalid_argument("--k must be > 0 (got " + std::to_string(k) + ")");
  }
  if (s.kind == CompressorKind::kQsgd && (qsgd_bits < 1 || qsgd_bits > 16)) {
    throw std::invalid_argument("--qsgd-bits must be in 1..16");
  }
  return s;
}

std::string CompressorSpec::Name() const {
  return VisitKind(kind, [&](auto tag) { return decltype(tag)::type::Name(*this); });
}

Index CompressorSpec::IntK(Index d) const {
  return VisitKind(kind, [&](auto tag) { return decltype(tag)::type::IntK(*this, d); });
}

Index CompressorSpec::Budget(Index d) const { return IntK(d); }

double CompressorSpec::Fraction(Index d) const {
  return VisitKind(kind, [&](auto tag) { return decltype(tag)::type::Fraction(*this, d); });
}

Compressor::Compressor(const CompressorSpec& spec, Index d) : spec_(spec), budget_(spec.Budget(d)) {
  VisitKind(spec.kind, [&](auto tag) {
    using Op = typename decltype(tag)::type;
    op_.template emplace<Op>(spec, d);
  });
}

}  // namespace memsgd
