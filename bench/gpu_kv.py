"""KV methods on a real 8B architecture on a GPU: KV bytes, peak memory, prefill time and decode speed.

A Llama-3-8B-shaped model (32 layers, 8 KV heads of 128, bf16) is created on the device with random weights (no
download: weights do not change memory or speed), then each (method, budget) runs one prompt of random token ids
at each length through the very code the gpu workers use (``evalworkers.kv.generation.generate``): the context
prefilled under the press, a 32-token question appended, 32 tokens decoded greedily. The full cache is the
baseline measured in the same run; each row's ratios are against it at the same length.

    python bench/gpu_kv.py [--lengths 32768,131072] [--new-tokens 32] [--layers 32]

Needs CUDA. Prints one table, then one JSON line of figures.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import json
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POINTS = [("full", 1.0), ("snapkv", 0.25), ("streaming_llm", 0.25), ("kv_quant", 0.25)]


def _stub_optional_imports() -> None:
    """kvpress imports `datasets` and `fire` for presses and scripts this bench does not use; a GPU image may
    not carry them, and nothing can be installed there."""
    for name in ("datasets", "fire"):
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.machinery.ModuleSpec(name, None)
            stub.load_dataset = stub.Fire = lambda *a, **k: (_ for _ in ()).throw(ImportError("not installed"))
            sys.modules[name] = stub


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="32768,131072")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--device", default="cuda", help="cpu only to check the script itself (few layers)")
    args = parser.parse_args()
    _stub_optional_imports()
    import kvpress  # noqa: F401  (fail before building the model if it cannot load)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.modeling_utils import no_init_weights

    from evalworkers.kv.generation import generate
    from evalworkers.kv.measure import KVOutOfMemory
    from evalworkers.kv.registry import plan

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/gpu_kv.py needs a CUDA device", file=sys.stderr)
        return 2
    lengths = [int(x) for x in args.lengths.split(",")]
    config = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=args.layers,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=128256,
                         max_position_embeddings=max(lengths) + 1024, rope_theta=500000.0)
    config._attn_implementation = "sdpa"
    started = time.perf_counter()
    torch.manual_seed(0)
    with no_init_weights(), device:
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(config)
        torch.set_default_dtype(torch.float32)
    for p in model.parameters():  # small random weights: finite activations, realistic kernels
        p.data.normal_(0.0, 0.02)
    model.eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B parameters, "
          f"{weights / 2**30:.1f} GiB of weights, built in {time.perf_counter() - started:.1f}s on "
          f"{name}", flush=True)
    question = torch.randint(1000, 100000, (1, 32), device=device)
    rows = []
    contexts = {length: torch.randint(1000, 100000, (1, length), device=device) for length in lengths}
    # The quantized cache comes last: its first use may compile quanto's kernels.
    order = sorted(((length, point) for length in lengths for point in POINTS),
                   key=lambda item: (item[1][0] == "kv_quant", item[0]))
    for length, (method, budget) in order:
        context = contexts[length]
        kv = plan(method, budget, model_name="llama-3-8b-shaped")
        row = {"length": length, "method": method, "budget": budget}
        try:
            if method == POINTS[0][0] and length == lengths[0]:  # warm-up: kernels and allocator
                generate(model, context[:, :1024], question, kv, max_new_tokens=4, eos_ids=[])
            _, measured = generate(model, context, question, kv, max_new_tokens=args.new_tokens, eos_ids=[])
            eff = measured.efficiency
            row.update(kv_bytes=eff.kv_bytes, kv_bytes_full=eff.kv_bytes_full, kept=eff.kept_fraction,
                       peak_memory_bytes=eff.peak_memory_bytes, prefill_s=eff.prefill_s,
                       ttft_s=measured.ttft_s,
                       decode_tokens_per_s=measured.decode_tokens_per_s)
        except KVOutOfMemory as exc:
            row.update(error=f"oom: {exc}")
        except Exception as exc:  # a method that cannot run here is reported, the others go on
            row.update(error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        rows.append(row)
        print(json.dumps(row), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    rows.sort(key=lambda r: (r["length"], [p[0] for p in POINTS].index(r["method"])))
    base = {r["length"]: r for r in rows if r["method"] == "full" and "error" not in r}
    print()
    print(f"{'length':>7} {'method':<14} {'budget':>6} {'KV MiB':>9} {'kept':>6} {'peak MiB':>9} {'xpeak':>6} "
          f"{'prefill s':>9} {'TTFT s':>7} {'decode t/s':>10} {'xdecode':>7}")
    for r in rows:
        if "error" in r:
            print(f"{r['length']:>7} {r['method']:<14} {r['budget']:>6g}  {r['error']}")
            continue
        b = base.get(r["length"])
        r["peak_ratio"] = r["peak_memory_bytes"] / b["peak_memory_bytes"] if b and b["peak_memory_bytes"] else None
        base_rate = b.get("decode_tokens_per_s") if b else None
        r["decode_ratio"] = r["decode_tokens_per_s"] / base_rate if base_rate else None
        print(f"{r['length']:>7} {r['method']:<14} {r['budget']:>6g} {r['kv_bytes'] / 2**20:>9.0f} "
              f"{r['kept']:>6.3f} {r['peak_memory_bytes'] / 2**20:>9.0f} {r['peak_ratio'] or 0:>6.2f} "
              f"{r['prefill_s']:>9.2f} {r['ttft_s']:>7.2f} {r['decode_tokens_per_s'] or 0:>10.1f} "
              f"{r['decode_ratio'] or 0:>7.2f}")
    print(json.dumps({"device": name, "weights_bytes": weights, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
