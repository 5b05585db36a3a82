"""The Open Inference Protocol (KServe v2 REST) with Triton's binary tensor data extension, for the champion.

Triton and KServe clients classify with it unchanged. Sprout's model takes one input, either

- ``images``: BYTES ``[N]``, encoded images (JPEG, PNG, ...). Binary (``binary_data_size``): each element is a
  little-endian uint32 length and the raw bytes. JSON: each element is the image **base64-encoded** (JSON
  strings cannot carry raw bytes; tritonclient's ``binary_data=False`` would send them as UTF-8 and fails), or
- ``pixels``: FP32 ``[N, 3, H, W]``, preprocessed as the model metadata's ``preprocess`` says (binary or JSON),

and answers ``probabilities`` (FP32 ``[N, C]``, columns in the order of the metadata's ``labels``) and ``label``
(BYTES ``[N]``). Outputs are JSON unless ``binary_data_output`` (request) or ``binary_data`` (output) asks
for binary; a body with binary data carries ``Inference-Header-Content-Length``.

- ``protocol``: its names, limits, errors, requests and metadata;
- ``decoding``: a request from its body; ``encoding``: a response to its body (no web framework in either);
- ``inference``: one request run through the predictor, from body to body;
- ``routes``: the ``/v2`` routes, which only move bytes between HTTP and ``inference``.
"""
