"""The runtime backends, one module each; every module here registers itself on import.

To add a backend, add a module that calls :func:`adainrt.runtime.backend.register_backend`
(see ``onnxruntime.py``): the CLI, bench, info and the Stylizer find it through the registry.
"""
