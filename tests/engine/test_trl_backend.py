"""`--backend trl`: TRL's SDFTTrainer on the run's data, with our prompts and settings (tiny model)."""

from dataclasses import replace

import pytest

pytest.importorskip("trl.experimental.sdft", reason="TRL is the optional [trl] extra")

from oel_engine.consolidation.trl_backend import (  # noqa: E402
    TrlDistiller,
    rows_per_step,
    teacher_messages,
)
from oel_engine.play.prompts import insert_experience  # noqa: E402
from tests.support import distill_config as config
from tests.support import prefixes


def rows(prefix_list, steps=1):
    return [{"prompt": p.prompt, "privileged_context": p.experience, "step": i % steps} for i, p in enumerate(prefix_list)]


def test_the_teacher_reads_our_prompt_whole(tiny_lm):
    long_experience = "\n".join(f"- EXPERIENCE ITEM: rule {i}: walk around the holes on row {i}." for i in range(60))
    d = TrlDistiller(tiny_lm, config(steps=1))
    p = prefixes([3])[1]
    trainer = d.trainer(rows([p]))
    built = trainer.teacher_context_builder.select_generation_prompts([p.prompt], [long_experience])[0]
    assert built == insert_experience(p.prompt, long_experience) == teacher_messages(p.prompt, long_experience)
    ids = trainer._tokenize_prompts([built])[0]
    ours = tiny_lm.encode_chat(insert_experience(p.prompt, long_experience))
    assert len(ours) > 512  # TRL's default limit would have cut it from the left
    assert ids == ours  # same template, same tokens, nothing cut
    args = trainer.args
    assert (args.distillation_alpha, args.distillation_topk, args.teacher_model_kind) == (1.0, 32, "base")
    assert args.learning_rate == 1e-2 and not args.distillation_add_tail and args.max_prompt_length is None


def test_rows_are_spread_evenly_over_the_steps():
    assert rows_per_step(10, 3) == 4 and rows_per_step(2, 4) == 1 and rows_per_step(0, 2) == 1


def test_trl_steps_lower_the_held_out_reverse_kl(sharp_lm):
    # float32 whatever this CPU measures faster: the KL it reaches must not depend on the machine's load
    d = TrlDistiller(sharp_lm, config(steps=8, micro_batch=4, autocast="off"))
    train, held_out = prefixes([0, 1, 2, 3]), prefixes([10, 11, 12])
    fixed = d.sample(held_out)
    start = d.evaluate_kl(held_out, fixed)
    records = []
    every_step = [dict(row, step=s) for s in range(8) for row in rows(train)]  # as our Distiller's test
    assert d.train(every_step, records.append, lambda: False)
    end = d.evaluate_kl(held_out, fixed)
    assert end < 0.9 * start, (start, end)
    assert [r["step"] for r in records] == list(range(8))
    assert all(r["loss"] is not None and r["prefixes"] == len(train) for r in records)


def test_a_stop_request_ends_training_between_steps(tiny_lm):
    d = TrlDistiller(tiny_lm, config(steps=5))
    records = []
    assert not d.train(rows(prefixes([0, 1]), steps=5), records.append, lambda: len(records) >= 2)
    assert len(records) == 2


def test_a_round_with_the_trl_backend_then_one_with_ours(tmp_path, tiny_tokenizer):
    import torch
    from peft import PeftModel

    from oel_engine.fileio import read_jsonl
    from oel_engine.metrics import ConsolidateStep, MetricsLog
    from tests.support import build_tiny_model, run_rounds, tiny_config

    base = tiny_config(rounds=2)
    config_trl = replace(base, consolidation=replace(base.consolidation, backend="trl"))
    run_rounds(tmp_path, "r", tiny_tokenizer, config_trl, rounds=1)
    adapter = tmp_path / "r" / "adapters" / "round-0"
    model = PeftModel.from_pretrained(build_tiny_model(len(tiny_tokenizer), seed=3, init_range=0.2), str(adapter))
    lora = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora and any(torch.count_nonzero(p) for p in lora)  # trained, not the zero initialisation
    log = MetricsLog.from_dicts(read_jsonl(tmp_path / "r" / "metrics.jsonl")[0])
    assert [s.step for s in log.of(ConsolidateStep, round=0)] == list(range(base.consolidation.steps))
    # another process of `accelerate launch` trains in lockstep on rank 0's data and writes nothing
    import shutil

    from oel_engine.errors import OelError
    from oel_engine.round.follower import follow_consolidation
    from tests.support import new_lm

    with pytest.raises(OelError, match="waited 0 s for rank 0"):
        follow_consolidation(tmp_path, "r", {}, timeout=0, lm=new_lm(tiny_tokenizer))
    data = tmp_path / "r" / "consolidation"
    shutil.copy(data / "round-0.jsonl", data / "round-1.jsonl")  # stands in for rank 0's round-1 data
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    assert follow_consolidation(tmp_path, "r", {}, lm=new_lm(tiny_tokenizer)) == base.consolidation.steps
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before
    (data / "round-1.jsonl").unlink()
    # the loop goes on: the next round consolidates with our backend on the merged weights
    from oel_engine.run.loop_config import read_config, save_config
    from oel_engine.run.store import RunStore

    with RunStore(tmp_path, "r") as store:
        save_config(store, replace(read_config(store), consolidation=base.consolidation))
    run_rounds(tmp_path, "r", tiny_tokenizer, rounds=2)
    log = MetricsLog.from_dicts(read_jsonl(tmp_path / "r" / "metrics.jsonl")[0])
    assert (tmp_path / "r" / "adapters" / "round-1" / "adapter_config.json").is_file()
    assert len(log.of(ConsolidateStep, round=1)) == base.consolidation.steps


def test_an_unknown_backend_is_one_clear_line(tmp_path):
    from tests.support import oel

    bad = oel("loop", "--run", "x", "--backend", "deepspeed", "--saves", str(tmp_path), timeout=120)
    assert bad.returncode == 2 and "backend must be ours or trl" in bad.stderr and "Traceback" not in bad.stderr


def test_two_processes_train_in_lockstep_and_only_rank_0_writes(tmp_path, tiny_folder):
    """The multi-GPU hand-off on the CPU: torchrun starts two processes (gloo instead of NCCL),
    as `accelerate launch` does; rank 1 follows rank 0's data and writes nothing."""
    import json
    import os
    import socket
    import subprocess
    import sys

    from tests.support import last_json, oel

    saves = str(tmp_path / "saves")
    last_json(oel("extract", "--run", "x", "--model", str(tiny_folder), "--runs", "2", "--steps", "2",
                  "--format", "unstructured", "--json", "--saves", saves))
    script = tmp_path / "oel_args.py"  # torchrun would read `--run` as its own option
    script.write_text("import os, shlex, sys\nsys.argv = ['oel'] + shlex.split(os.environ['OEL_ARGS'])\n"
                      "from oel_engine.cli.main import main\nmain()\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", OEL_ARGS=f"consolidate --run x --steps 2 --backend trl --json --saves {saves}")
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
                           str(script)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Waiting for rank 0 to build the round's data" in done.stderr
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["steps"] == 2  # rank 0 reports; rank 1 is silent
    assert os.path.isfile(os.path.join(summaries[0]["adapter"], "adapter_config.json"))


def test_the_shipped_accelerate_configs_are_valid():
    from pathlib import Path

    import accelerate
    from accelerate.commands.config.config_args import load_config_from_file

    folder = Path(__file__).resolve().parents[2] / "examples" / "accelerate"
    known = (Path(accelerate.__file__).parent / "commands" / "config" / "cluster.py").read_text()
    kinds = {}
    for path in sorted(folder.glob("*.yaml")):
        config = load_config_from_file(str(path))  # unknown top-level keys are refused here
        kinds[path.stem] = str(config.distributed_type).rsplit(".", 1)[-1]
        for key in {**(config.fsdp_config or {}), **(config.deepspeed_config or {})}:
            assert f'"{key}"' in known or f"'{key}'" in known, (path.name, key)  # inner keys accelerate knows
        assert "--backend trl" in path.read_text()  # each says how to launch
    assert kinds == {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed-zero2": "DEEPSPEED"}
