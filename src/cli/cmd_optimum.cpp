// memsgd optimum: f* = min f by the truncated Newton method of optimum.hpp.
// The LAST line of stdout is `fstar <value>` (%.15g); other tools parse it.
#include <boost/program_options.hpp>

#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "data_options.hpp"
#include "memsgd/libsvm.hpp"
#include "memsgd/model_io.hpp"
#include "memsgd/optimum.hpp"

namespace po = boost::program_options;

namespace memsgd::cli {
namespace {

constexpr const char* kOptimumHelp = R"(Usage: memsgd optimum DATA [options]

Computes f* = min_x (1/n) sum_i phi(a_i.x, y_i) + lambda/2 |x|^2 for the logistic or
least-squares loss (lambda > 0) by a full-batch truncated Newton method (preconditioned CG,
line search), to f(x) - f* <= 1e-12 |f| unless --tol is given: it stops when
|grad f(x)| <= tol, and tol defaults to sqrt(2 lambda 1e-12 |f(x)|), which bounds the gap
by strong convexity. nonconvex-logistic is not supported (f* is not a global minimum there).

Which problem: the data as memsgd stores it, every value rounded to float32 (relative error
<= 2^-24 = 6e-8 per value; 1-bit labels and indices are exact). The trainer uses the same
values, so suboptimality is measured against the problem it solves. The optimum of the
float64 values in the file can differ by about that rounding times the loss's sensitivity to
the values (phishing, every value 0.18257...: 7.7e-9 relative); the 1e-12 above is the
distance to the float32 problem's optimum, not to the float64 file's.

Progress lines (one per Newton iteration) go to stdout; the last line is `fstar <value>`.
Exit codes: 0 done, 1 usage error, 2 bad data file, 3 NaN/inf or not converged.
)";

}  // namespace

int RunOptimum(int argc, char** argv) {
  std::string data_path, objective_name, model_path;
  double lambda = 0, positive_label = 0, tol = 0;
  int max_iterations = 500;
  bool normalize = false, quiet = false;

  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
    ("help,h", "print this help")
    ("lambda", po::value(&lambda), "regularisation weight lambda > 0 (default 1/n)")
    ("objective", po::value(&objective_name)->default_value("logistic"),
     "logistic | least-squares")
    ("normalize", po::bool_switch(&normalize), "scale every row to unit L2 norm first")
    ("positive-label", po::value(&positive_label),
     "the original label that becomes +1 (required for files with more than two classes)")
    ("tol", po::value(&tol), "stop when |grad f| <= tol (default: sqrt(2 lambda 1e-12 |f|))")
    ("max-iterations", po::value(&max_iterations)->default_value(500), "Newton iterations")
    ("model-out", po::value(&model_path), "write x* as a LIBLINEAR model file")
    ("quiet,q", po::bool_switch(&quiet), "no progress lines");
  // clang-format on
  DataLoadOptions load;
  AddDataLoadOptions(opts, load);
  po::variables_map vm;
  if (const int rc = ParseCommandLine("optimum", argc, argv, opts, {{"data", &data_path}},
                                      kOptimumHelp, "no data file given", vm);
      rc >= 0) {
    return rc;
  }
  if (const std::string err = CheckDataLoadOptions(load); !err.empty()) {
    std::fprintf(stderr, "memsgd optimum: %s\n", err.c_str());
    return kUsage;
  }
  if (objective_name != "logistic" && objective_name != "least-squares") {
    std::fprintf(stderr,
                 "memsgd optimum: --objective must be logistic or least-squares (got '%s')\n",
                 objective_name.c_str());
    return kUsage;
  }
  if (vm.count("lambda") && !(lambda > 0 && std::isfinite(lambda))) {
    std::fprintf(stderr, "memsgd optimum: --lambda must be > 0 (got %g)\n", lambda);
    return kUsage;
  }
  if (vm.count("tol") && !(tol > 0 && std::isfinite(tol))) {
    std::fprintf(stderr, "memsgd optimum: --tol must be > 0 (got %g)\n", tol);
    return kUsage;
  }
  if (max_iterations < 1) {
    std::fprintf(stderr, "memsgd optimum: --max-iterations must be >= 1 (got %d)\n",
                 max_iterations);
    return kUsage;
  }

  Dataset data;
  try {
    ReadOptions ro;
    if (vm.count("positive-label")) ro.positive_label = positive_label;
    data = LoadData("optimum", data_path, ro, load, /*main=*/true, quiet);
  } catch (const ParseError& e) {
    std::fprintf(stderr, "memsgd optimum: %s\n", e.what());
    return kDataError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memsgd optimum: %s: %s\n", data_path.c_str(), e.what());
    return kDataError;
  }
  if (data.NumRows() == 0) {
    std::fprintf(stderr, "memsgd optimum: %s has no rows\n", data_path.c_str());
    return kDataError;
  }
  if (normalize) data.NormalizeRows();
  if (!vm.count("lambda")) lambda = 1.0 / static_cast<double>(data.NumRows());
  const Objective obj = Objective::FromName(objective_name, lambda);

  std::printf("data %s: n=%lld d=%d nnz=%lld (%s)%s\nobjective %s lambda=%.17g\n",
              data_path.c_str(), static_cast<long long>(data.NumRows()), data.NumFeatures(),
              static_cast<long long>(data.NumNonZeros()), data.IsDense() ? "dense" : "sparse",
              normalize ? " normalized" : "", obj.Name().c_str(), lambda);
  std::fflush(stdout);

  OptimumOptions oo;
  oo.grad_tol = vm.count("tol") ? tol : 0.0;
  oo.max_iterations = max_iterations;
  if (!quiet) {
    oo.progress = [](const OptimumProgress& p) {
      std::printf("iter %3d  f %.17g  |grad| %.3e  cg %4d  step %-6.4g  time %.3fs\n",
                  p.iteration, p.f, p.grad_norm, p.cg_iterations, p.step, p.seconds);
      std::fflush(stdout);
    };
  }
  OptimumResult res;
  try {
    res = ComputeOptimum(obj, data, oo);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "memsgd optimum: %s\n", e.what());
    return kUsage;
  }

  if (!model_path.empty()) {
    try {
      WriteModel(MakeLinearModel(obj, data, res.x), model_path);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "memsgd optimum: %s\n", e.what());
      return kDataError;
    }
  }
  std::printf("newton_iterations %d  hessian_vector_products %lld  seconds %.3f\n",
              res.iterations, static_cast<long long>(res.cg_iterations), res.seconds);
  std::printf("grad_norm %.3e  tol %.3e  gap_bound %.3e  converged %s\n", res.grad_norm,
              res.grad_tol, res.gap_bound, res.converged ? "yes" : "no");
  if (!std::isfinite(res.fstar)) {
    std::fprintf(stderr, "memsgd optimum: f is not finite (%g)\n", res.fstar);
    return kDiverged;
  }
  if (!res.converged) {
    std::fprintf(stderr,
                 "memsgd optimum: warning: not converged (|grad| %.3e > tol %.3e); the value "
                 "below is an upper bound on f* with f - f* <= %.3e\n",
                 res.grad_norm, res.grad_tol, res.gap_bound);
  }
  std::printf("fstar %.15g\n", res.fstar);
  return res.converged ? kOk : kDiverged;
}

}  // namespace memsgd::cli
