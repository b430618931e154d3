// SHA-256 (FIPS 180-4) of a file, to check a graph against its manifest entry as the Python
// runtime does: a graph changed after export, or from an interrupted export, is refused.
#pragma once

#include <string>

namespace adainrt {

// Lower-case hex digest of the file's bytes; throws std::runtime_error if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace adainrt
