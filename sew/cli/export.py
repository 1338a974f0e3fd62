"""``sew export onnx``: a model directory to an ONNX file, checked against PyTorch."""

from __future__ import annotations

import sys


def run_onnx_export(args) -> int:
    from sew.checkpoint import load_model
    from sew.export import check_onnx, export_onnx

    model = load_model(args.model).eval()
    path = export_onnx(model, args.out, max_seconds=args.max_duration, opset=args.opset)
    files = [f for f in (path, path.with_name(path.name + ".data")) if f.exists()]
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"wrote {' + '.join(str(f) for f in files)} ({size:.1f} MiB; keep them together): inputs waveforms "
          "[batch, samples] float32 and lengths [batch] int64; dynamic batch and time")
    if not args.no_check:
        diff = check_onnx(path, model)
        print(f"onnxruntime vs PyTorch on padded batches of 3 shapes: max |difference| {diff:.2e}")
        if diff > args.tolerance:
            print(f"sew export: error: difference above the tolerance {args.tolerance}", file=sys.stderr)
            return 1
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model for deployment (ONNX)",
                       description="Export a model for deployment.")
    kinds = p.add_subparsers(dest="export_format", metavar="FORMAT")
    onnx = kinds.add_parser("onnx", help="ONNX with dynamic batch and time axes, checked with onnxruntime",
                            description="Export to ONNX (opset 18+, dynamic batch and time) and compare the result "
                                        "with PyTorch on padded batches of several lengths.")
    onnx.add_argument("--model", required=True, help="model directory (ours or Hugging Face) or Hub id (ORG/NAME)")
    onnx.add_argument("--out", required=True, help="ONNX file to write")
    onnx.add_argument("--max-duration", type=float, default=3600.0,
                      help="longest input the graph accepts, in seconds (default: 3600)")
    onnx.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    onnx.add_argument("--tolerance", type=float, default=1e-4, help="max allowed difference in the check (default: 1e-4)")
    onnx.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    onnx.set_defaults(func=run_onnx_export)
    p.set_defaults(func=lambda args: p.print_help() or 2)
