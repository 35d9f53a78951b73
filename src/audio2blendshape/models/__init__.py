"""Models: tensors in, tensors out — no loss, device choice or I/O inside an ``nn.Module``.

Lives here: ``simplified`` (the design document's SimplifiedModel and the shared layers), ``frame``
(FrameModel, a pose per frame), ``frame_inference`` (FrameModel's forward rearranged for fast inference;
the ONNX export runs it), ``reference`` (the seed's model written the obvious way, for tests and
benchmarks), ``dropout``, ``features`` (the torch twin of ``audio.mel``), ``checkpoint`` (rebuild a model from
a self-describing safetensors file), ``onnx_export``, ``torch_backend`` (a model behind the runtime's numpy
interface), ``viseme_probe`` (a training-only viseme classifier on FrameModel's encoder).
May import: torch, safetensors, ``audio``, ``names``, ``typed_config``, ``runtime.onnx_backend`` (the ONNX
metadata format). Never ``data`` or ``training``.
"""
