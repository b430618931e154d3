"""The runtime backends, one module (or package, as ``tensorrt/``) each; each registers itself on import.

To add a backend, add a module that calls :func:`adainrt.runtime.backend.register_backend` (see
``onnxruntime.py``) and declares there what it knows (cache folders, libraries, whether it can be the
reference): the CLI, bench, info, cache and the Stylizer find it through the registry.
"""
