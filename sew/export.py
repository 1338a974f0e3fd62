"""Deployment: ONNX export (checked against PyTorch with onnxruntime) and the inference backends.

``inference_backend`` puts a model behind ``torch`` (as is), ``bf16``, ``int8`` (dynamic
quantisation of the linear layers) or ``onnx`` (ONNX Runtime), with the same call signature.

The ONNX graph takes ``waveforms [batch, samples]`` float32 and ``lengths [batch]`` int64 and returns
``logits [batch, frames, vocab]`` (or ``hidden [batch, frames, dim]`` without a CTC head) and
``frames [batch]``, the valid frame counts. Needs the ``onnx`` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sew.cpu import capabilities

ONNX_HINT = "ONNX export needs the optional packages: pip install 'sew[onnx]' (onnx, onnxscript, onnxruntime)"
# 4 frames: the squeezed families keep 2, so the traced graph (which assumes more than one row of
# position scores, see sew.models.disentangled.toeplitz_view) holds for every input; shorter
# inputs are zero-padded up to it, their lengths unchanged.
MIN_SAMPLES = 1360


class ExportWrapper(torch.nn.Module):
    """Plain tensors in and out, as an exported graph needs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor):
        out = self.model(waveforms, lengths)
        return (out.logits if out.logits is not None else out.last_hidden_state), out.lengths


def export_onnx(model, path: str | Path, *, max_seconds: float = 3600.0, opset: int | None = None) -> Path:
    """Write ``model`` as ONNX to ``path`` (batch and time dynamic, inputs of at least MIN_SAMPLES)."""
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError as err:
        raise ValueError(ONNX_HINT) from err
    import logging

    # "torchvision is not installed. Skipping torchvision::..." lines: noise for our graphs.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model.eval()).eval()
    x, lengths = torch.randn(2, 16000), torch.tensor([16000, 12000])
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=MIN_SAMPLES, max=int(max_seconds * 16000))
    # Traced with autograd on: under no_grad the exporter emits ScatterND nodes that onnxruntime rejects.
    torch.onnx.export(wrapper, (x, lengths), str(path), dynamo=True, opset_version=opset, verbose=False,
                      input_names=["waveforms", "lengths"], output_names=["logits", "frames"],
                      dynamic_shapes={"waveforms": {0: batch, 1: samples}, "lengths": {0: batch}})
    return path


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime session on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ValueError(ONNX_HINT) from err
    options = ort.SessionOptions()
    # No busy-waiting of idle worker threads: they would take cores from whatever runs next
    # (measured: PyTorch timed between ONNX Runtime runs lost a third of its speed).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an exported model: (logits or hidden states, valid frames) as tensors."""
    out, frames = session.run(None, {"waveforms": waveforms.float().numpy(), "lengths": lengths.long().numpy()})
    return torch.from_numpy(out), torch.from_numpy(frames)


def check_onnx(path: str | Path, model, shapes=((1, 8000), (3, 23456), (2, 80000))) -> float:
    """Max abs difference between ONNX Runtime and PyTorch over padded batches of several shapes."""
    session = onnx_session(path)
    worst = 0.0
    g = torch.Generator().manual_seed(0)
    for batch, samples in shapes:
        x = torch.randn(batch, samples, generator=g)
        lengths = torch.tensor([samples] + [max(MIN_SAMPLES, samples - 3000 * i) for i in range(1, batch)])
        got, frames = run_onnx(session, x, lengths)
        with torch.no_grad():
            want = model(x, lengths)
        reference = want.logits if want.logits is not None else want.last_hidden_state
        if not torch.equal(frames, want.lengths):
            raise ValueError(f"{path}: frame counts differ from PyTorch for a batch of {batch} x {samples}")
        worst = max(worst, (got - reference).abs().max().item())
    return worst


BACKENDS = ("torch", "bf16", "int8", "onnx")


def quantize_int8(model):
    """A copy of ``model`` with every Linear layer dynamically quantised to int8 (CPU)."""
    import copy
    import warnings

    caps = capabilities()
    if not caps.int8:
        raise ValueError(f"int8 needs a quantised linear engine, which this CPU lacks ({caps.describe()}; "
                         "fbgemm needs AVX2); use the float32 or bf16 backend")
    model = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def inference_backend(model, backend: str, model_dir: str | Path | None = None, *, onnx_file=None, log=print):
    """``model`` (eval mode) behind ``backend``, never changing ``model`` itself: ``torch`` the model as
    is, ``bf16`` a bfloat16 copy, ``int8`` a quantised copy (CPU), ``onnx`` an ``OnnxEncoder`` on
    ``onnx_file`` (default ``model_dir/model.onnx``, exported when missing or older than the weights;
    CPU). On a CPU the PyTorch backends run converted for inference (``sew.optimize_for_cpu``)."""
    import copy

    from sew.inference import optimize_for_cpu

    model = model.eval()
    if backend in ("torch", "bf16"):
        return optimize_for_cpu(model if backend == "torch" else copy.deepcopy(model).to(torch.bfloat16))
    if backend == "int8":
        return optimize_for_cpu(quantize_int8(model.cpu()))
    if backend == "onnx":
        return load_onnx_model(model_dir, onnx_file, model=model, log=log)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


class OnnxEncoder:
    """An exported model behind the same call as ``SpeechEncoder``: ``model(waveforms, lengths)`` gives an
    ``EncoderOutput`` with ``logits`` (or ``last_hidden_state``) and ``lengths``, so evaluation and
    chunked transcription run on ONNX Runtime unchanged. ``config`` and ``output_lengths`` come from the
    PyTorch model the file was exported from."""

    training = False

    def __init__(self, path: str | Path, model, threads: int | None = None):
        self.path = Path(path)
        self.session = onnx_session(self.path, threads)
        self.config = model.config
        self.has_head = model.ctc_head is not None
        self.output_lengths = model.output_lengths

    def eval(self):
        return self

    def train(self, mode: bool = True):
        if mode:
            raise ValueError(f"{self.path}: an ONNX model runs inference only")
        return self

    def __call__(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None):
        from sew.models.encoder import EncoderOutput

        waveforms = waveforms.detach().cpu()
        if waveforms.dim() == 1:
            waveforms = waveforms[None]
        if lengths is None:
            lengths = torch.full((waveforms.shape[0],), waveforms.shape[1], dtype=torch.long)
        total = int(self.output_lengths(torch.tensor([waveforms.shape[1]]))[0])  # frames PyTorch would give
        if waveforms.shape[1] < MIN_SAMPLES:  # the graph's lower bound; the padding is masked by lengths
            waveforms = torch.nn.functional.pad(waveforms, (0, MIN_SAMPLES - waveforms.shape[1]))
        out, frames = run_onnx(self.session, waveforms, lengths.cpu())
        out = out[:, :total]
        if self.has_head:
            return EncoderOutput(last_hidden_state=out, lengths=frames, logits=out)
        return EncoderOutput(last_hidden_state=out, lengths=frames)


def load_onnx_model(model_dir: str | Path, onnx_path: str | Path | None = None, *, model=None,
                    threads: int | None = None, log=print) -> OnnxEncoder:
    """ONNX Runtime inference for a model directory: ``onnx_path`` (default ``DIR/model.onnx``), exported
    from the directory's weights first when it is missing or older than them. ``model``: the directory's
    PyTorch model when already loaded."""
    from sew.checkpoint import load_model

    from sew.hub import cached_snapshot, resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    model = (model if model is not None else load_model(model_dir)).cpu().eval()
    if onnx_path:
        path = Path(onnx_path)
    elif cached_snapshot(model_dir):  # a Hub model: the file goes to our cache, not into the Hub's
        from sew.data.synth import cache_dir

        path = cache_dir() / "onnx" / f"{cached_snapshot(model_dir)}.onnx"
    else:
        path = Path(model_dir) / "model.onnx"
    weights = [f for f in Path(model_dir).iterdir() if f.suffix in (".safetensors", ".bin")] if Path(model_dir).is_dir() else []
    newest = max((f.stat().st_mtime for f in weights), default=0.0)
    if not path.is_file() or path.stat().st_mtime < newest:
        log(f"exporting {model_dir} to {path} (once; later runs reuse it)")
        try:
            export_onnx(model, path)
        except PermissionError as err:
            raise ValueError(f"{path}: cannot write the ONNX file ({err.strerror}); export it elsewhere with "
                             f"'sew export onnx --model {model_dir} --out FILE' and pass --onnx-file FILE") from err
    return OnnxEncoder(path, model, threads)
