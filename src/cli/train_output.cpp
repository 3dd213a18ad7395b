// Output checks and the result line shared by `memsgd train` and `memsgd-mpi train`.
#include "train_output.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "commands.hpp"

namespace memsgd::cli {
namespace {

// True when a and b name the same file (or the same path when one does not exist yet).
bool SameFile(const std::string& a, const std::string& b) {
  if (a == b) return true;
  struct stat sa {}, sb {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Fails now, not after hours of training, when an output file cannot be created: creates and
// removes a temporary file next to it (the outputs are written the same way).
void CheckWritable(const std::string& option, const std::string& path) {
  if (path.empty()) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw std::runtime_error(option + " '" + path + "' is a directory");
  const std::string probe = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error(option + " '" + path + "': cannot write there: " +
                             std::strerror(errno));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace

// Output locations are checked before the data is read and the training starts; the checkpoint
// to resume must be readable before minutes are spent loading the data. kOk or the exit code.
int CheckOutputs(const TrainArgs& a, const char* who) {
  const std::string& model_path = a.model_path;
  const std::string& trace_path = a.trace_path;
  const std::string& checkpoint_path = a.checkpoint_path;
  const std::string& resume_path = a.resume_path;
  try {
    // No output may replace an input or another output (--resume FILE --checkpoint FILE is the
    // intended way to continue a run in place).
    const std::vector<std::pair<const char*, const std::string*>> files = {
        {"--model", &model_path}, {"--trace", &trace_path}, {"--checkpoint", &checkpoint_path},
        {"DATA", &a.data_path}, {"--test", &a.test_path}, {"--resume", &resume_path}};
    for (std::size_t i = 0; i < 3; ++i) {
      for (std::size_t j = i + 1; j < files.size(); ++j) {
        if (files[i].second->empty() || files[j].second->empty()) continue;
        if (j == 5 && i == 2) continue;
        if (SameFile(*files[i].second, *files[j].second))
          throw std::runtime_error(std::string(files[i].first) + " '" + *files[i].second +
                                   "' would overwrite " + files[j].first + " '" +
                                   *files[j].second + "'");
      }
    }
    CheckWritable("--model", model_path);
    CheckWritable("--trace", trace_path);
    CheckWritable("--checkpoint", checkpoint_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", who, e.what());
    return kUsage;
  }
  if (!resume_path.empty()) {
    std::FILE* f = std::fopen(resume_path.c_str(), "rb");
    if (!f) {
      std::fprintf(stderr, "%s: cannot read checkpoint '%s': %s\n", who, resume_path.c_str(),
                   std::strerror(errno));
      return kDataError;
    }
    std::fclose(f);
  }

  return kOk;
}

void PrintProgress(const TracePoint& p) {
  std::fprintf(stderr, "epoch %6.2f  samples %10lld  time %8.3fs  loss %.8f", p.epoch,
               static_cast<long long>(p.samples), p.seconds, p.loss);
  if (!std::isnan(p.suboptimality)) std::fprintf(stderr, "  subopt %.3e", p.suboptimality);
  std::fprintf(stderr, "  |grad|^2 %.3e", p.grad_norm2);
  if (!std::isnan(p.test_accuracy)) std::fprintf(stderr, "  test_acc %.4f", p.test_accuracy);
  std::fprintf(stderr, "  bits %.4g\n", p.bits);
}

// The result line on stdout (the last line of every run).
void PrintResult(const TrainConfig& cfg, const TrainResult& res) {
  const TracePoint last = res.trace.empty() ? TracePoint{} : res.trace.back();
  std::printf("result: method=%s loss=%.10g", MethodName(cfg.method).c_str(), last.loss);
  if (!std::isnan(last.suboptimality)) std::printf(" suboptimality=%.4e", last.suboptimality);
  if (!std::isnan(last.test_accuracy)) std::printf(" test_accuracy=%.4f", last.test_accuracy);
  std::printf(" grad_norm2=%.4e train_accuracy=%.4f epochs=%.3g samples=%lld train_seconds=%.4f "
              "samples_per_s=%.4g bits=%.6g",
              last.grad_norm2, last.train_accuracy, last.epoch,
              static_cast<long long>(res.samples), res.train_seconds, res.SamplesPerSecond(),
              last.bits);
  if (!std::isnan(res.uplink_bits_values))
    std::printf(" uplink_bits_values=%.6g uplink_bits_indexed=%.6g downlink_bits_dense=%.6g "
                "downlink_bits_sparse=%.6g",
                res.uplink_bits_values, res.uplink_bits_indexed, res.downlink_bits_dense,
                res.downlink_bits_sparse);
  if (res.flush_every > 0) std::printf(" flush_every=%lld", static_cast<long long>(res.flush_every));
  std::printf("\n");
}

void PrintResumed(const TrainArgs& a, const TrainResult& res, double rows, const char* who) {
  if (res.resumed_from >= 0 && !a.quiet) {
    std::fprintf(stderr, "resumed from %s at sample %lld (epoch %.4g)\n", a.resume_path.c_str(),
                 static_cast<long long>(res.resumed_from),
                 static_cast<double>(res.resumed_from) / rows);
  }
  for (const auto& w : res.warnings) std::fprintf(stderr, "%s: warning: %s\n", who, w.c_str());
}

void PrintInterrupted(const TrainArgs& a, const TrainResult& res, const char* who) {
  std::fprintf(stderr, "%s: interrupted after %lld samples; trace and model written so far\n", who,
               static_cast<long long>(res.samples));
  if (!a.checkpoint_path.empty() && res.checkpoints_written > 0)
    std::fprintf(stderr, "%s: checkpoint saved to %s; continue with --resume %s\n", who,
                 a.checkpoint_path.c_str(), a.checkpoint_path.c_str());
}

}  // namespace memsgd::cli
