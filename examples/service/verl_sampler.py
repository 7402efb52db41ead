"""A verl curriculum sampler backed by the AutoTune service.

verl builds the sampler named by `data.sampler.class_path` / `data.sampler.class_name` with
`(data_source, data_config)` and, for a curriculum sampler
(`verl.experimental.dataset.sampler.AbstractCurriculumSampler`), calls `update(batch)` after the
rewards of each step are computed. This sampler:

- registers the training set as a pool (ids: the dataset index, or `extra_info.index`),
- yields dataset indices that the service chooses by the configured mask (`next`, rollouts,
  k = `actor_rollout_ref.rollout.n` samples per prompt),
- in `update`, reports one outcome per response (correct iff its sequence score > threshold).

Configuration (in `data.sampler`, read from `data_config.sampler` if present, else env vars):
  autotune_url (AUTOTUNE_URL, default http://127.0.0.1:8470), autotune_pool (AUTOTUNE_POOL,
  default "verl"), autotune_mask (AUTOTUNE_MASK, default "zero-variance"), autotune_k
  (AUTOTUNE_K, default 8), autotune_batch (AUTOTUNE_BATCH, default data.train_batch_size),
  token from AUTOTUNE_TOKEN.

Written against the interface in verl's `verl/experimental/dataset/sampler.py`
(`__init__(self, data_source, data_config)`, `update(self, batch: DataProto)`); the keys of
`batch` used here (`non_tensor_batch["index"]`, `batch["token_level_scores"]`) follow verl's
PPO trainer and may need adjusting for a custom reward pipeline.
"""

import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client import AutoTuneClient  # noqa: E402

try:
    from verl.experimental.dataset.sampler import AbstractCurriculumSampler as _Base
except ImportError:  # verl not installed: keep the module importable for reading and tests
    from torch.utils.data import Sampler as _Base


def _cfg(data_config, key, env, default):
    sampler_cfg = getattr(data_config, "sampler", None) or {}
    try:
        value = sampler_cfg.get(key)
    except AttributeError:
        value = getattr(sampler_cfg, key, None)
    return value if value is not None else os.environ.get(env, default)


class AutoTuneSampler(_Base):
    def __init__(self, data_source, data_config):
        self.data_source = data_source
        self.client = AutoTuneClient(
            _cfg(data_config, "autotune_url", "AUTOTUNE_URL", "http://127.0.0.1:8470"),
            token=os.environ.get("AUTOTUNE_TOKEN"),
        )
        self.pool = _cfg(data_config, "autotune_pool", "AUTOTUNE_POOL", "verl")
        mask = _cfg(data_config, "autotune_mask", "AUTOTUNE_MASK", "zero-variance")
        self.k = int(_cfg(data_config, "autotune_k", "AUTOTUNE_K", 8))
        default_batch = getattr(data_config, "train_batch_size", None) or 256
        self.batch = int(_cfg(data_config, "autotune_batch", "AUTOTUNE_BATCH", default_batch))
        self.threshold = float(_cfg(data_config, "autotune_threshold", "AUTOTUNE_THRESHOLD", 0.0))
        self.client.register(
            self.pool, {"strategy": mask}, [{"id": str(i)} for i in range(len(data_source))]
        )
        # index -> next sample number to report (from the lease's sample_base)
        self.sample_next = {}

    def __len__(self):
        return len(self.data_source)

    def __iter__(self):
        yielded = 0
        while yielded < len(self.data_source):
            got = self.client.next(self.pool, n=self.batch, purpose="rollouts", k=self.k)
            if not got["prompts"]:
                return  # nothing eligible under the mask: the epoch ends early
            for p in got["prompts"]:
                self.sample_next[p["id"]] = p["sample_base"]
                yielded += 1
                yield int(p["id"])

    def update(self, batch) -> None:
        index = batch.non_tensor_batch["index"]
        scores = batch.batch["token_level_scores"].sum(-1).tolist()
        counts = defaultdict(int)
        results = []
        for idx, score in zip(index, scores):
            pid = str(int(idx))
            base = self.sample_next.get(pid, 0)
            results.append(
                {"prompt_id": pid, "sample": base + counts[pid], "correct": score > self.threshold}
            )
            counts[pid] += 1
        for pid, n in counts.items():
            self.sample_next[pid] = self.sample_next.get(pid, 0) + n
        if results:
            self.client.report(self.pool, results)
