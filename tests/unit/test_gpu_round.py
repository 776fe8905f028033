"""bench/gpu_round.py runs on the CPU with the tiny shape (on a CUDA machine it measures the Qwen3
shapes): every piece measured, the projection made of them."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_round_bench_measures_every_piece_on_the_cpu(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_round
    finally:
        sys.path.remove(str(ROOT / "bench"))
    out = tmp_path / "gpu_round.json"
    gpu_round.main(["--shape", "tiny", "--device", "cpu", "--batch", "3", "--new-tokens", "6", "--prefixes", "2",
                    "--out", str(out)])
    report = json.loads(out.read_text())
    [r] = report["shapes"]
    assert r["vocab_rows"] == 151_936 and r["preset"] == "paper-frozenlake"  # the real vocabulary, padded
    assert r["decode"]["tokens"] == 3 * 6 and r["decode"]["tokens_per_s"] > 0  # never stopped early
    for update in ("lora", "full"):
        assert r[update]["prefixes"] == 2 and r[update]["seconds"] > 0 and r[update]["mean_response_tokens"] == 6
    p = r["round"]
    parts = p["collection_h"] + p["extraction_h"] + p["evaluation_h"]
    assert abs(p["round_full_h"] - (parts + p["consolidation_full_h"])) <= 0.03
    assert abs(p["round_lora_h"] - (parts + p["consolidation_lora_h"])) <= 0.03
    assert all(v > 0 for v in p.values())
    assert "cores" in report["machine"]["device"]  # the CPU is named with the figures
