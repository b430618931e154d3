// adainrt_stylize: stylize one PPM image with another, through adainrt::Stylizer.
//
//   adainrt_stylize MODEL_DIR CONTENT.ppm STYLE.ppm OUT.ppm [ALPHA] [--bf16] [--threads N]
//                   [--repeat N] [--overwrite]
//
// Every failure is one line on stderr and a non-zero exit (2: usage, 1: anything else).
// --repeat N stylizes the content N more times after the first and prints the timings as one
// JSON line on stdout (what benchmarks/cpp_bench.py reads).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "adainrt/stylizer.hpp"
#include "ppm.hpp"

namespace {

constexpr const char* kUsage =
    "usage: adainrt_stylize MODEL_DIR CONTENT.ppm STYLE.ppm OUT.ppm [ALPHA] [--bf16] [--threads N] "
    "[--repeat N] [--overwrite]\n"
    "  MODEL_DIR    a folder written by `adainrt export` (manifest.json + adain_*.onnx)\n"
    "  ALPHA        content-style trade-off in [0, 1] (default 1: fully stylized)\n"
    "  --bf16       compute in bf16 (fast on CPUs with AVX512_BF16 or AMX); default f32\n"
    "  --threads N  OpenVINO inference threads (default: all cores)\n"
    "  --repeat N   time N more runs and print them as JSON on stdout\n"
    "  --overwrite  replace OUT.ppm if it exists\n";

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string model, content, style, out;
  float alpha = 1.0f;
  adainrt::Options options;
  int repeat = 0;
  bool overwrite = false;
};

float parse_alpha(const std::string& text) {
  char* end = nullptr;
  float value = std::strtof(text.c_str(), &end);
  if (text.empty() || *end != '\0') throw UsageError("alpha: \"" + text + "\" is not a number");
  return value;
}

int parse_count(const std::string& text, const std::string& option) {
  char* end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 0 || value > 1'000'000) {
    throw UsageError(option + ": \"" + text + "\" is not a count (0 or more)");
  }
  return static_cast<int>(value);
}

Args parse_args(const std::vector<std::string>& argv) {
  Args args;
  std::vector<std::string> positional;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= argv.size()) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--bf16") args.options.precision = adainrt::Precision::bf16;
    else if (arg == "--overwrite") args.overwrite = true;
    else if (arg == "--threads") args.options.num_threads = parse_count(value(), arg);
    else if (arg == "--repeat") args.repeat = parse_count(value(), arg);
    else if (arg.size() > 1 && arg[0] == '-' && arg.find_first_not_of("-.0123456789") != std::string::npos) {
      throw UsageError("unknown option " + arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 4 || positional.size() > 5) {
    throw UsageError("expected MODEL_DIR CONTENT.ppm STYLE.ppm OUT.ppm [ALPHA], got " +
                     std::to_string(positional.size()) + " arguments");
  }
  args.model = positional[0];
  args.content = positional[1];
  args.style = positional[2];
  args.out = positional[3];
  if (positional.size() == 5) args.alpha = parse_alpha(positional[4]);
  return args;
}

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Timings as one JSON line: the first stylize of a size includes OpenVINO's shape setup.
void print_timings(const adainrt::Image& content, double load_ms, double style_ms, double first_ms,
                   const std::vector<double>& runs) {
  std::ostringstream line;
  line << "{\"width\": " << content.width << ", \"height\": " << content.height << ", \"load_ms\": " << load_ms
       << ", \"style_ms\": " << style_ms << ", \"first_ms\": " << first_ms << ", \"stylize_ms\": [";
  for (size_t i = 0; i < runs.size(); ++i) line << (i ? ", " : "") << runs[i];
  line << "]}";
  std::cout << line.str() << std::endl;
}

void run(const Args& args) {
  std::error_code ignored;
  ppm::check_replaceable(args.out);  // before --overwrite's question: a device is never replaced
  if (!args.overwrite && std::filesystem::exists(args.out, ignored)) {
    throw UsageError(args.out + " exists; pass --overwrite to replace it");
  }
  const std::filesystem::path folder = std::filesystem::path(args.out).parent_path();
  if (!folder.empty() && !std::filesystem::is_directory(folder, ignored)) {
    throw std::runtime_error(args.out + ": no such folder " + folder.string());
  }
  adainrt::check_alpha(args.alpha);  // before the slow part: a typo should fail at once
  const adainrt::Image content = ppm::read(args.content);
  const adainrt::Image style = ppm::read(args.style);

  Clock::time_point start = Clock::now();
  adainrt::Stylizer stylizer(args.model, args.options);
  const double load_ms = ms_since(start);
  start = Clock::now();
  const adainrt::StyleStats stats = stylizer.style_stats(style);
  const double style_ms = ms_since(start);
  start = Clock::now();
  adainrt::Image out = stylizer.stylize(content, stats, args.alpha);
  const double first_ms = ms_since(start);

  std::vector<double> runs;
  for (int i = 0; i < args.repeat; ++i) {
    start = Clock::now();
    stylizer.stylize(content.rgb.data(), content.width, content.height, stats, args.alpha, out.rgb.data());
    runs.push_back(ms_since(start));
  }
  ppm::write_atomic(args.out, out);
  if (args.repeat > 0) print_timings(content, load_ms, style_ms, first_ms, runs);
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> argv_list(argv + 1, argv + argc);
  if (argv_list.empty() || argv_list[0] == "--help" || argv_list[0] == "-h") {
    (argv_list.empty() ? std::cerr : std::cout) << kUsage;
    return argv_list.empty() ? 2 : 0;
  }
  try {
    run(parse_args(argv_list));
    return 0;
  } catch (const UsageError& exc) {
    std::cerr << "adainrt_stylize: " << exc.what() << " (--help for usage)" << std::endl;
    return 2;
  } catch (const std::exception& exc) {
    std::cerr << "adainrt_stylize: " << exc.what() << std::endl;
    return 1;
  }
}
