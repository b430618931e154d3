#include "ppm.hpp"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace ppm {
namespace {

// Refuse images above this many pixels before allocating (a corrupt header or a mistake),
// the limit the Python CLI uses.
constexpr long long kMaxPixels = 100'000'000;

// Header fields are decimal numbers separated by whitespace, with '#' comments to the end of a line.
class HeaderReader {
 public:
  HeaderReader(std::istream& in, const std::string& path) : in_(in), path_(path) {}

  long long number(const char* field) {
    int c = skip_space_and_comments();
    if (c == EOF || !std::isdigit(c)) {
      throw Error(path_ + ": not a binary PPM (bad " + std::string(field) + " in the header)");
    }
    long long value = 0;
    while (c != EOF && std::isdigit(c)) {
      value = value * 10 + (c - '0');
      if (value > 1'000'000'000) throw Error(path_ + ": not a binary PPM (" + field + " too large)");
      c = in_.get();
    }
    // One whitespace character ends the last field; the raster starts right after it.
    if (c == EOF || !std::isspace(c)) throw Error(path_ + ": not a binary PPM (bad " + std::string(field) + ")");
    return value;
  }

 private:
  std::istream& in_;
  const std::string& path_;

  int skip_space_and_comments() {
    int c = in_.get();
    while (c != EOF && (std::isspace(c) || c == '#')) {
      if (c == '#') {
        while (c != EOF && c != '\n' && c != '\r') c = in_.get();
      }
      c = in_.get();
    }
    return c;
  }
};

}  // namespace

adainrt::Image read(const std::string& path) {
  std::error_code ignored;
  if (!std::filesystem::is_regular_file(path, ignored)) throw Error(path + ": no such image file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot be read");
  char magic[2] = {0, 0};
  in.read(magic, 2);
  if (in.gcount() != 2 || magic[0] != 'P' || magic[1] != '6') {
    const bool ascii = in.gcount() == 2 && magic[0] == 'P' && magic[1] == '3';
    throw Error(path + (ascii ? ": an ASCII PPM (P3); save it as binary PPM (P6)"
                              : ": not a binary PPM file (P6); convert it, e.g. with PIL: img.save('x.ppm')"));
  }
  HeaderReader header(in, path);
  const long long width = header.number("width");
  const long long height = header.number("height");
  const long long maxval = header.number("maxval");
  if (width < 1 || height < 1) throw Error(path + ": " + std::to_string(width) + "x" + std::to_string(height) +
                                           " image has no pixels");
  if (width * height > kMaxPixels) {
    throw Error(path + ": " + std::to_string(width) + "x" + std::to_string(height) +
                " is above the limit of 100 megapixels; downscale it first");
  }
  if (maxval != 255) throw Error(path + ": maxval " + std::to_string(maxval) + "; only 8-bit PPM (maxval 255) is read");
  adainrt::Image image{static_cast<int>(width), static_cast<int>(height), {}};
  image.rgb.resize(static_cast<size_t>(width * height * 3));
  in.read(reinterpret_cast<char*>(image.rgb.data()), static_cast<std::streamsize>(image.rgb.size()));
  if (static_cast<size_t>(in.gcount()) != image.rgb.size()) {
    throw Error(path + ": truncated: its header says " + std::to_string(width) + "x" + std::to_string(height) +
                " but the pixel data stops at " + std::to_string(100 * in.gcount() / image.rgb.size()) + "%");
  }
  return image;
}

void check_replaceable(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  const fs::file_status status = fs::status(path, ignored);
  if (!fs::exists(status) || fs::is_regular_file(status)) return;
  const char* kind = fs::is_fifo(status)        ? "a named pipe (FIFO)"
                     : fs::is_directory(status) ? "a folder"
                     : fs::is_socket(status)    ? "a socket"
                                                : "a device";
  throw Error(path + " is " + kind + ", not a regular file; it is not replaced: write to a file");
}

void write_atomic(const std::string& path, const adainrt::Image& image) {
  namespace fs = std::filesystem;
  check_replaceable(path);
  // Same folder as the target, so the rename stays within one file system and is atomic.
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot be written (does its folder exist?)");
    out << "P6\n" << image.width << " " << image.height << "\n255\n";
    out.write(reinterpret_cast<const char*>(image.rgb.data()), static_cast<std::streamsize>(image.rgb.size()));
    out.close();
    if (!out) {
      std::remove(temp.c_str());
      throw Error(path + ": write failed (disk full?)");
    }
  }
  std::error_code error;
  fs::rename(temp, path, error);
  if (error) {
    std::remove(temp.c_str());
    throw Error(path + ": cannot be written (" + error.message() + ")");
  }
}

}  // namespace ppm
