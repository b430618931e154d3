// Binary PPM (P6, maxval 255) in and out, for the example: a format any image tool writes
// (`convert photo.jpg photo.ppm`, PIL's img.save("photo.ppm")) that needs no image library.
#pragma once

#include <stdexcept>
#include <string>

#include "adainrt/stylizer.hpp"

namespace ppm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads a P6 file (comments in the header allowed); throws ppm::Error naming the file and the problem.
adainrt::Image read(const std::string& path);

// Throws ppm::Error when path exists and is not a regular file (a FIFO, a device, a folder): renaming
// over it would replace the node itself (run as root on /dev/full, the device).
void check_replaceable(const std::string& path);

// Writes a P6 file atomically: a temporary file beside it, renamed over path once complete.
// Refuses a path that is not a regular file (check_replaceable).
void write_atomic(const std::string& path, const adainrt::Image& image);

}  // namespace ppm
