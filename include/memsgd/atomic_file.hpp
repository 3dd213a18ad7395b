// Every output file (model, predictions, trace, checkpoint) is written to a temporary name next
// to it and renamed into place, so a failed or killed run never leaves a partial file.
#pragma once
#include <string>

namespace memsgd {

// Writes `content` to path + ".tmp.<pid>", flushes it to disk and renames it into place; throws
// std::runtime_error naming the file on failure and removes the temporary file.
void WriteFileAtomically(const std::string& path, const std::string& content);

}  // namespace memsgd
