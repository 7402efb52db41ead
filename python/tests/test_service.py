"""The Python package against a live ``autotune serve`` (standard library only).

The server is the built binary: ``AUTOTUNE_BIN`` or ``target/release/autotune``. Run with
``python3 -m unittest discover -s python/tests`` (CI runs it from the Rust test
``crates/autotune-cli/tests/python.rs``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from autotune import AutoTuneClient, AutoTuneError  # noqa: E402
from autotune.client import ServiceDown  # noqa: E402
from autotune.trl import AutoTune, AutoTuneSampler, LeaseBook  # noqa: E402

SERVER: subprocess.Popen | None = None
URL = ""
TMP: tempfile.TemporaryDirectory | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setUpModule() -> None:
    global SERVER, URL, TMP
    binary = os.environ.get("AUTOTUNE_BIN", str(ROOT / "target/release/autotune"))
    if not Path(binary).exists():
        raise unittest.SkipTest(f"no autotune binary at {binary}: cargo build --release first")
    TMP = tempfile.TemporaryDirectory()
    port = free_port()
    SERVER = subprocess.Popen(
        [binary, "serve", "--port", str(port), "--store", os.path.join(TMP.name, "s.sqlite")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    URL = f"http://127.0.0.1:{port}"
    c = AutoTuneClient(URL, retries=0, timeout=2)
    for _ in range(200):
        try:
            c.health()
            return
        except ServiceDown:
            time.sleep(0.05)
    raise RuntimeError("autotune serve did not start")


def tearDownModule() -> None:
    if SERVER is not None:
        SERVER.kill()
        SERVER.wait()
    if TMP is not None:
        TMP.cleanup()


class ClientTest(unittest.TestCase):
    def test_register_lease_report_replay_phase_and_errors(self) -> None:
        c = AutoTuneClient(URL)
        self.assertEqual(c.health()["status"], "ok")
        prompts = [{"id": f"q{i}", "prompt": f"{i}+{i}=?", "answer": str(2 * i)} for i in range(10)]
        self.assertEqual(c.register("py-cex", {"strategy": "autotune-cex"}, prompts)["prompts"], 10)
        b = c.next("py-cex", n=10, purpose="rollouts", k=2)
        self.assertEqual(len(b["prompts"]), 10)
        results = [
            {"prompt_id": p["id"], "sample": p["sample_base"] + j, "correct": int(p["id"][1:]) % 2 == 0}
            for p in b["prompts"]
            for j in range(p["k"])
        ]
        self.assertEqual(c.report("py-cex", results, idempotency_key="py-1")["accepted"], 20)
        again = c.report("py-cex", results, idempotency_key="py-1")
        self.assertTrue(again["replayed"])
        self.assertEqual(again["accepted"], 20)
        t = c.next("py-cex", n=10, purpose="teacher")
        self.assertEqual(sorted(int(p["id"][1:]) for p in t["prompts"]), [1, 3, 5, 7, 9])
        s = c.state("py-cex")
        self.assertEqual(s["counters"]["outcomes"], 20)
        self.assertEqual(c.advance("py-cex", model_version="m1", expected_phase=0)["phase"], 1)
        with self.assertRaises(AutoTuneError) as e:
            c.next("nope", n=1)
        self.assertEqual((e.exception.status, e.exception.type), (404, "not_found"))
        with self.assertRaises(AutoTuneError) as e:
            c.next("py-cex", n=0)
        self.assertEqual((e.exception.status, e.exception.field), (400, "n"))

    def test_a_service_that_is_down_is_one_clear_error(self) -> None:
        down = f"http://127.0.0.1:{free_port()}"
        with self.assertRaises(ServiceDown) as e:
            AutoTune(down, pool="x", mask={"strategy": "uniform"}, ids=["a"],
                     client=AutoTuneClient(down, retries=1, timeout=1))
        self.assertIn("does not answer", str(e.exception))
        self.assertIn("autotune serve", str(e.exception))


def grpo_epoch(at: AutoTune, sampler: AutoTuneSampler, ids: list[str], reward) -> list[list[int]]:
    """Walks the sampler as GRPOTrainer does: each generation batch is the next
    ``batch_size * num_generations`` indices, generated once and reused for ``repeat_count``
    blocks; rewards are computed once per generation batch. Returns the generation batches."""
    wrapped = at.reward(reward)
    per_gen = sampler.batch_size * sampler.num_generations
    block = per_gen * sampler.repeat_count
    indices = list(sampler)
    batches = []
    for start in range(0, len(indices), block):
        chunk = indices[start : start + block]
        gen = chunk[:per_gen]
        # The block is the generation batch repeated (num_iterations * steps_per_generation).
        assert chunk == gen * sampler.repeat_count, "the block repeats the generation batch"
        batches.append(gen)
        completions = [f"completion {j}" for j in range(len(gen))]
        wrapped(prompts=[ids[i] for i in gen], completions=completions, id=[ids[i] for i in gen])
    return batches


class TrlSamplerTest(unittest.TestCase):
    def test_each_completion_is_reported_once_and_every_lease_closes(self) -> None:
        ids = [f"p{i}" for i in range(40)]
        at = AutoTune(URL, pool="grpo", mask={"strategy": "learnability"}, ids=ids)
        # num_generations 4, generation_batch_size 16 (4 prompts a batch),
        # num_iterations 2 x steps_per_generation 2.
        sampler = at.sampler(ids, num_generations=4, generation_batch_size=16, repeat_count=4)
        # RepeatSampler's length: (40 // 4) * 4 * 4 * 4.
        self.assertEqual(len(sampler), 640)
        batches = grpo_epoch(at, sampler, ids, lambda prompts, completions, **kw: [
            1.0 if j % 2 else 0.0 for j in range(len(completions))
        ])
        self.assertEqual(sum(len(b) for b in batches) * 4, len(sampler))
        for gen in batches:
            # Each prompt num_generations times in a row, 4 distinct prompts.
            self.assertEqual(len(set(gen)), 4)
            for g in range(0, 16, 4):
                self.assertEqual(len(set(gen[g : g + 4])), 1)
        state = at.client.state("grpo")
        counters = state["counters"]
        self.assertEqual(counters["duplicates"], 0)
        self.assertEqual(state["leased"], 0, "no lease left open")
        self.assertEqual(at.book.open(), 0)
        self.assertEqual(counters["prompts_leased"], 40)
        self.assertEqual(counters["outcomes"], 160, "40 prompts x 4 completions, each once")
        self.assertEqual(at.reporter.reported, 160)
        # The prompts trained are the prompts leased: every row once.
        self.assertEqual(sorted(i for b in batches for i in set(b)), list(range(40)))

    def test_evaluation_rewards_and_extra_completions_are_not_reported(self) -> None:
        ids = [f"e{i}" for i in range(8)]
        at = AutoTune(URL, pool="evals", mask={"strategy": "learnability"}, ids=ids)
        wrapped = at.reward(lambda prompts, completions, **kw: [1.0] * len(completions))
        # Rewards of prompts that were never leased (an evaluation set): ignored, no error.
        wrapped(prompts=["x"], completions=["c"], id=["held-out-7"])
        self.assertEqual((at.reporter.reported, at.reporter.ignored), (0, 1))
        # A lease of k=2, and three completions: the third is not reported.
        at.book.add(at.client.next("evals", n=1, k=2)["prompts"])
        pid = next(iter(at.book._open))
        wrapped(prompts=[pid] * 3, completions=["a", "b", "c"], id=[pid] * 3)
        self.assertEqual((at.reporter.reported, at.reporter.ignored), (2, 2))
        self.assertEqual(at.client.state("evals")["counters"]["duplicates"], 0)

    def test_a_failed_report_is_kept_and_sent_once(self) -> None:
        ids = [f"f{i}" for i in range(4)]
        at = AutoTune(URL, pool="flaky", mask={"strategy": "learnability"}, ids=ids)
        at.book.add(at.client.next("flaky", n=4, k=1)["prompts"])
        wrapped = at.reward(lambda prompts, completions, **kw: [0.0] * len(completions))
        good = at.reporter.client
        at.reporter.client = AutoTuneClient(f"http://127.0.0.1:{free_port()}", retries=0, timeout=1)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            wrapped(prompts=ids[:2], completions=["a", "b"], id=ids[:2])
        self.assertTrue(any("kept and sent again" in str(x.message) for x in w))
        self.assertEqual(len(at.reporter.pending), 1)
        at.reporter.client = good
        wrapped(prompts=ids[2:], completions=["c", "d"], id=ids[2:])
        self.assertEqual(at.reporter.pending, [])
        counters = at.client.state("flaky")["counters"]
        self.assertEqual((counters["outcomes"], counters["duplicates"]), (4, 0))
        # Sending the first report again (a retry after a lost answer) counts nothing twice.
        self.assertEqual(at.reporter.reported, 4)

    def test_finish_releases_the_leases_never_trained(self) -> None:
        ids = [f"r{i}" for i in range(6)]
        at = AutoTune(URL, pool="ahead", mask={"strategy": "learnability"}, ids=ids)
        sampler = at.sampler(ids, num_generations=2, generation_batch_size=4)
        walk = iter(sampler)
        first = [next(walk) for _ in range(4)]  # the first generation batch, trained
        next(walk)  # the data loader fetches ahead: a second lease, never trained
        wrapped = at.reward(lambda prompts, completions, **kw: [1.0] * len(completions))
        wrapped(prompts=[ids[i] for i in first], completions=["a"] * 4, id=[ids[i] for i in first])
        self.assertEqual(at.client.state("ahead")["leased"], 2)
        at.reporter.finish()
        self.assertEqual(at.reporter.released, 2)
        state = at.client.state("ahead")
        self.assertEqual((state["leased"], state["counters"]["outcomes"]), (0, 4))
        self.assertEqual(at.book.open(), 0)

    def test_a_pool_that_runs_dry_ends_the_epoch_and_says_why(self) -> None:
        ids = [f"d{i}" for i in range(8)]
        at = AutoTune(URL, pool="dry", mask={"strategy": "autotune-cex"}, ids=ids)
        sampler = at.sampler(ids, num_generations=2, generation_batch_size=8)
        always_right = lambda prompts, completions, **kw: [1.0] * len(completions)  # noqa: E731
        first = grpo_epoch(at, sampler, ids, always_right)
        self.assertEqual(len(first), 2)
        self.assertIsNone(sampler.dry)
        # Every prompt answered right: the counterexample mask leaves nothing to lease.
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            second = grpo_epoch(at, sampler, ids, always_right)
        self.assertEqual(second, [])
        self.assertIn("no eligible prompt left after 0 of 2", sampler.dry)

    def test_bad_sizes_and_ids_are_clear_errors(self) -> None:
        c = AutoTuneClient(URL)
        with self.assertRaisesRegex(ValueError, "multiple of num_generations"):
            AutoTuneSampler(c, "grpo", ["a", "b"], num_generations=3, generation_batch_size=8)
        with self.assertRaisesRegex(ValueError, "appears twice"):
            AutoTuneSampler(c, "grpo", ["a", "a"], num_generations=1, generation_batch_size=1)
        book = LeaseBook()
        self.assertIsNone(book.take("nothing"))


if __name__ == "__main__":
    unittest.main()
