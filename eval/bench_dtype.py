"""bf16 against fp32 for the MiniLM models, interleaved in one process: speed and agreement.

    python -m eval.bench_dtype [--n 16] [--agreement-n 100] [--rounds 3]

Why: the project assumed bf16 (several times fp32 on AVX512-BF16 CPUs). On a CPU without
native bf16, oneDNN emulates it, and `tools.compute` then picks fp32. This command measures
what that choice is worth here. Both models load once (fp32 weights, bf16 by autocast as
in the project) and each round times bf16 then fp32 back to back (ONCOGRAPH_TORCH_DTYPE
switched in-process), so a busy neighbour weighs on both alike; the report gives each
type's median over the rounds, on the first `--n` val abstracts (NCBI dev documents for the
NER model), after a warm-up call:

- GEMM GFLOP/s at MiniLM's MLP shape in both types (the hardware's own ratio);
- abstracts/s of the MiniLM classifier and of the MiniLM NER model (the disease model route);
- agreement: P(Cancer) of both types on `--agreement-n` val abstracts (decisions at 0.5, max
  and mean |dP|); the NER model's argmax labels (share of documents whose labels all agree).

The Qwen torch backend is left out of the timing: bf16 at the emulated rate would take
minutes per abstract here (see the GEMM ratio); its int8 engine is the default anyway.
Writes reports/classification/dtype.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from core.settings import PROJECT_ROOT

OUT = PROJECT_ROOT / "reports" / "classification"
DTYPES = ("bfloat16", "float32")


def _seconds(fn, items: list) -> float:
    start = time.perf_counter()
    fn(items)
    return time.perf_counter() - start


def _use(dtype: str) -> None:
    """Switch tools.compute's choice in this process (the models read it at every call)."""
    from tools.compute import OVERRIDE_ENV, native_bf16

    os.environ[OVERRIDE_ENV] = dtype
    native_bf16.cache_clear()


def measure(n: int, agreement_n: int, rounds: int) -> dict:
    """Per type: median GEMM rate and abstracts/s over interleaved rounds, and the scores."""
    import torch

    from eval.bench_classifier import gemm_gflops
    from eval.disease_data import read_corpus
    from finetune.data import load_split
    from tools.classifier.registry import get_classifier
    from tools.diseases.model import model_scores

    val = [e.text for e in load_split("val")]
    docs = [d.text for d in read_corpus("ncbi_dev", n)]
    clf = get_classifier("minilm", "finetuned", None)
    classify = lambda t: clf.predict_proba(t, calibrated=False)  # noqa: E731
    ner = lambda t: model_scores(t, backend="torch")  # noqa: E731  (the float type is torch's)
    runs: dict[str, dict] = {d: {"gemm": [], "minilm": [], "ner": []} for d in DTYPES}
    for dtype in DTYPES:  # warm-up: oneDNN picks its kernels on the first call of each type
        _use(dtype)
        classify(val[:2]), ner(docs[:2])
    for _ in range(rounds):
        for dtype in DTYPES:
            _use(dtype)
            torch_dtype = getattr(torch, dtype)
            runs[dtype]["gemm"].append(gemm_gflops(512, 384, 1536, repeats=20, dtype=torch_dtype))
            runs[dtype]["minilm"].append(n / _seconds(classify, val[:n]))
            runs[dtype]["ner"].append(len(docs) / _seconds(ner, docs))
    out = {}
    for dtype in DTYPES:
        _use(dtype)
        out[dtype] = {
            "dtype": dtype, "threads": torch.get_num_threads(),
            "gemm_gflops": round(float(np.median(runs[dtype]["gemm"])), 2),
            "minilm_abstracts_per_s": round(float(np.median(runs[dtype]["minilm"])), 3),
            "ner_abstracts_per_s": round(float(np.median(runs[dtype]["ner"])), 3),
            "rounds": {k: [round(v, 3) for v in vs] for k, vs in runs[dtype].items()},
            "p_cancer": np.round(np.asarray(classify(val[:agreement_n]), dtype=float), 6).tolist(),
            "ner_labels": [s.labels for s in ner(docs)],
        }
    _use("auto")  # back to what the hardware decides
    return out


def compare(bf16: dict, fp32: dict) -> dict:
    a, b = np.asarray(bf16["p_cancer"]), np.asarray(fp32["p_cancer"])
    same_labels = [x == y for x, y in zip(bf16["ner_labels"], fp32["ner_labels"], strict=True)]
    return {
        "gemm_ratio_fp32_over_bf16": round(fp32["gemm_gflops"] / bf16["gemm_gflops"], 2),
        "minilm_speedup": round(fp32["minilm_abstracts_per_s"] / bf16["minilm_abstracts_per_s"], 2),
        "ner_speedup": round(fp32["ner_abstracts_per_s"] / bf16["ner_abstracts_per_s"], 2),
        "minilm_n": len(a),
        "minilm_decision_agreement": float(np.mean((a >= 0.5) == (b >= 0.5))),
        "minilm_max_abs_dp": round(float(np.abs(a - b).max()), 4),
        "minilm_mean_abs_dp": round(float(np.abs(a - b).mean()), 5),
        "ner_docs": len(same_labels),
        "ner_docs_all_labels_equal": round(float(np.mean(same_labels)), 3),
    }


def render(report: dict) -> str:
    rows = "\n".join(
        f"| {r['dtype']} | {r['gemm_gflops']} | {r['minilm_abstracts_per_s']} | "
        f"{r['ner_abstracts_per_s']} |" for r in report["runs"])
    c = report["comparison"]
    return (
        "# bf16 or fp32: what the float type is worth on this machine\n\n"
        f"Generated by `python -m eval.bench_dtype --n {report['n']} --agreement-n "
        f"{report['agreement_n']} --rounds {report['rounds']}` (`make classification-dtype`) on "
        f"{report['when']}; "
        f"CPU native bf16: **{report['native_bf16']}** (flags {report['bf16_flags'] or 'none'});"
        f" load average {report['load_average_1m']} at the start; {report['runs'][0]['threads']}"
        " torch threads. Both types in one process, each round bf16 then fp32, medians over "
        f"the rounds; load average {report['load_average_1m_after']} at the end.\n\n"
        "| float type | GEMM GFLOP/s (MiniLM MLP shape) | MiniLM classifier abstracts/s | "
        "MiniLM NER abstracts/s |\n|---|---|---|---|\n"
        f"{rows}\n\n"
        f"- fp32 over bf16: GEMM **{c['gemm_ratio_fp32_over_bf16']}x**, MiniLM classifier "
        f"**{c['minilm_speedup']}x**, NER model **{c['ner_speedup']}x**.\n"
        f"- Agreement on {c['minilm_n']} val abstracts: decisions "
        f"{c['minilm_decision_agreement']:.3f}, max |dP| {c['minilm_max_abs_dp']}, mean "
        f"{c['minilm_mean_abs_dp']}. NER: {c['ner_docs_all_labels_equal']:.3f} of "
        f"{c['ner_docs']} documents get the same label on every token.\n\n"
        f"What the project runs here: **{report['chosen']}** (`tools.compute`: bf16 only where "
        "the CPU has avx512_bf16 or amx_bf16; ONCOGRAPH_TORCH_DTYPE overrides it).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="abstracts timed per model and type")
    parser.add_argument("--agreement-n", type=int, default=100,
                        help="val abstracts whose P(Cancer) both types score")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    args = parser.parse_args(argv)
    from tools.compute import NATIVE_BF16_FLAGS, compute_dtype, cpu_flags

    load = round(os.getloadavg()[0], 2)
    chosen = str(compute_dtype()).removeprefix("torch.")
    measured = measure(args.n, args.agreement_n, args.rounds)
    runs = [measured[d] for d in DTYPES]
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "n": args.n,
        "agreement_n": args.agreement_n, "rounds": args.rounds, "load_average_1m": load,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "bf16_flags": sorted(NATIVE_BF16_FLAGS & cpu_flags()),
        "native_bf16": bool(NATIVE_BF16_FLAGS & cpu_flags()),
        "chosen": chosen,
        "runs": [{k: v for k, v in r.items() if k not in ("p_cancer", "ner_labels")}
                 for r in runs],
        "comparison": compare(*runs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dtype.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "dtype.md").write_text(render(report))
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
