"""TRL integration: a callback that reports per-prompt rewards to the AutoTune service, and a
sampler that draws the prompts the service chooses.

    from trl import GRPOTrainer, GRPOConfig
    from trl_callback import AutoTuneCallback, autotune_reward, AutoTuneSampler

    cb = AutoTuneCallback(url="http://127.0.0.1:8470", pool="gsm8k")
    trainer = GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=ds,
                          reward_funcs=[autotune_reward(my_correctness_reward, cb)],
                          callbacks=[cb])

The reward wrapper sees every completion with its prompt id (dataset column `id`) and reward,
buffers one outcome per completion, and the callback reports them after each optimiser step
(`on_step_end`). To let the service choose the prompts, pass `AutoTuneSampler(ds, cb)` as the
train sampler by overriding `_get_train_sampler` (see README.md).
"""

import os
import sys
import uuid
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client import AutoTuneClient  # noqa: E402

try:
    from transformers import TrainerCallback
except ImportError:  # transformers not installed: keep the module importable
    TrainerCallback = object

try:
    from torch.utils.data import Sampler
except ImportError:
    Sampler = object


class AutoTuneCallback(TrainerCallback):
    def __init__(self, url="http://127.0.0.1:8470", pool="trl", mask=None, prompt_ids=None,
                 threshold=0.5, token=None):
        self.client = AutoTuneClient(url, token=token or os.environ.get("AUTOTUNE_TOKEN"))
        self.pool = pool
        self.threshold = threshold
        self.pending = []
        self.sample_next = defaultdict(int)
        if mask is not None and prompt_ids is not None:
            self.client.register(pool, mask, [{"id": str(i)} for i in prompt_ids])

    def record(self, prompt_id, reward, tokens=None):
        pid = str(prompt_id)
        r = {"prompt_id": pid, "sample": self.sample_next[pid], "correct": reward > self.threshold}
        if tokens is not None:
            r["tokens"] = int(tokens)
        self.sample_next[pid] += 1
        self.pending.append(r)

    def flush(self):
        if self.pending:
            batch, self.pending = self.pending, []
            self.client.report(self.pool, batch, idempotency_key=uuid.uuid4().hex)

    def on_step_end(self, args, state, control, **kwargs):
        self.flush()
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.flush()
        return control


def autotune_reward(reward_func, callback, id_column="id"):
    """Wraps a TRL reward function so that each completion's reward is also reported."""

    def wrapped(prompts, completions, **kwargs):
        rewards = reward_func(prompts=prompts, completions=completions, **kwargs)
        for pid, r in zip(kwargs[id_column], rewards):
            if r is not None:
                callback.record(pid, float(r))
        return rewards

    wrapped.__name__ = getattr(reward_func, "__name__", "reward")
    return wrapped


class AutoTuneSampler(Sampler):
    """Yields dataset indices chosen by the service (the dataset's `id` column must be the
    registered prompt ids; row i is looked up by id)."""

    def __init__(self, dataset, callback, batch=64, k=8, repeat=None, id_column="id"):
        self.cb = callback
        self.batch = batch
        self.k = k
        # GRPO needs each prompt num_generations times in a row (TRL's RepeatSampler does this).
        self.repeat = repeat or k
        self.row = {str(v): i for i, v in enumerate(dataset[id_column])}

    def __len__(self):
        return len(self.row)

    def __iter__(self):
        yielded = 0
        while yielded < len(self.row):
            got = self.cb.client.next(self.cb.pool, n=self.batch, purpose="rollouts", k=self.k)
            if not got["prompts"]:
                return
            for p in got["prompts"]:
                self.cb.sample_next[p["id"]] = max(self.cb.sample_next[p["id"]], p["sample_base"])
                yielded += 1
                for _ in range(self.repeat):
                    yield self.row[p["id"]]
