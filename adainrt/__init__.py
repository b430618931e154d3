"""adainrt: AdaIN arbitrary style transfer from PyTorch to ONNX, OpenVINO, onnxruntime and TensorRT.

Importing this package (and ``adainrt.runtime``) needs numpy, pillow and a runtime (OpenVINO, a
base dependency, or onnxruntime from an extra); torch is imported by the modules that define,
load, export or train the network.
"""

__version__ = "0.1.0"
