"""adainrt: AdaIN arbitrary style transfer from PyTorch to ONNX, onnxruntime and TensorRT.

Importing this package (and ``adainrt.runtime``) needs only numpy, pillow and onnxruntime;
torch is imported by the modules that define, load, export or train the network.
"""

__version__ = "0.1.0"
