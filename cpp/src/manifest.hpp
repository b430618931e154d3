// manifest.json, the graphs' contract written by `adainrt export` (adainrt/contract.py):
// which files hold the encoder, style and decoder graphs, their tensor names, and the
// pre-processing a consumer must do. Nothing here is hard-coded beyond the manifest's format.
#pragma once

#include <string>
#include <vector>

namespace adainrt {

struct GraphFile {
  std::string path;    // model folder + file name
  std::string sha256;  // as exported
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

// The split graphs in the roles the Stylizer runs them, with the names it feeds and reads.
struct Manifest {
  GraphFile encoder;  // content -> content_features
  GraphFile style;    // style -> style_mean, style_std
  GraphFile decoder;  // content_features, style_mean, style_std, alpha -> image (padded)
  int min_size = 0;      // smallest height or width the graphs admit
  int pad_multiple = 0;  // the encoder pads to it; the decoder's image is that much larger
  int channels = 0;      // relu4_1 channels, the length of style_mean and style_std
};

// Reads and checks MODEL_DIR/manifest.json for the FP32 split graphs; throws adainrt::Error
// (ErrorCode::Model) naming the folder and the fix.
Manifest read_manifest(const std::string& model_dir);

}  // namespace adainrt
