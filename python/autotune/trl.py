"""TRL's GRPOTrainer with AutoTune choosing the prompts.

    from autotune.trl import AutoTune, grpo_trainer_class

    at = AutoTune("http://127.0.0.1:8470", pool="gsm8k", mask={"strategy": "learnability"},
                  ids=train_dataset["id"])
    Trainer = grpo_trainer_class()            # a GRPOTrainer subclass (needs trl)
    trainer = Trainer(model=..., args=GRPOConfig(num_generations=8, ...),
                      train_dataset=train_dataset, reward_funcs=[at.reward(correctness)],
                      autotune=at)
    trainer.train()

How it fits GRPOTrainer (TRL 1.x): the trainer's own ``RepeatSampler`` yields each chunk of
``generation_batch_size // num_generations`` prompts ``num_iterations * steps_per_generation``
times, each prompt ``num_generations`` times in a row, and every process walks the same
sequence (accelerate shards it). :class:`AutoTuneSampler` keeps that structure exactly, with
each chunk leased from the service (on the main process, broadcast to the others), ``k`` =
``num_generations`` samples per prompt, and its length computed as RepeatSampler's. The
reward wrapper (:meth:`AutoTune.reward`) sees every completion's reward with its prompt id;
the rewards of all processes are gathered, and the main process numbers each completion from
its lease's ``sample_base`` and reports it, once, with an idempotency key kept until the
service has acknowledged the report. Completions of prompts that are not leased (evaluation)
and completions beyond a lease's ``k`` are not reported; at the end of training the leases
never trained (batches the data loader fetched ahead) are released. A restarted training does not skip
batches by leasing and discarding them (``ignore_data_skip``): it leases afresh.
"""

from __future__ import annotations

import uuid
import warnings
from typing import Any, Callable, Iterator, Sequence

from .client import AutoTuneClient, AutoTuneError, ServiceDown

try:  # torch is optional: the sampler's logic runs without it (and is tested so)
    from torch.utils.data import Sampler as _Sampler
except ImportError:  # pragma: no cover - depends on the environment
    _Sampler = object  # type: ignore[assignment,misc]


def _dist() -> Any:
    """torch.distributed when several processes train together, else None."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist
    return None


def _is_main() -> bool:
    dist = _dist()
    return dist is None or dist.get_rank() == 0


def _broadcast(obj: Any) -> Any:
    """The main process's ``obj`` on every process."""
    dist = _dist()
    if dist is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(items: list) -> list:
    """Every process's ``items``, concatenated in process order (on every process)."""
    dist = _dist()
    if dist is None:
        return items
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, items)
    return [x for part in out for x in part]


class LeaseBook:
    """The rollout leases taken and the samples numbered against them."""

    def __init__(self) -> None:
        # prompt id -> [sample_base, k, samples numbered]
        self._open: dict[str, list[int]] = {}
        self.leased = 0

    def add(self, prompts: Sequence[dict]) -> None:
        for p in prompts:
            self._open[p["id"]] = [int(p["sample_base"]), int(p["k"]), 0]
            self.leased += 1

    def take(self, prompt_id: str) -> int | None:
        """The sample number of the next completion of ``prompt_id``; None when it is not
        leased or its ``k`` samples are numbered."""
        lease = self._open.get(prompt_id)
        if lease is None:
            return None
        base, k, used = lease
        lease[2] += 1
        if lease[2] == k:
            del self._open[prompt_id]
        return base + used

    def open(self) -> int:
        """Leases with samples still to report."""
        return len(self._open)

    def close_unused(self) -> list[str]:
        """Forgets the open leases and returns their prompt ids (to release them)."""
        ids = list(self._open)
        self._open.clear()
        return ids


class AutoTuneSampler(_Sampler):  # type: ignore[misc,valid-type]
    """GRPOTrainer's RepeatSampler, with the chunks leased from the service.

    ``ids`` are the dataset's prompt ids in row order (registered as the pool's prompt ids).
    An epoch is at most ``len(ids) // batch_size`` chunks, as RepeatSampler's; it ends early,
    with a warning and :attr:`dry` saying why, when the pool has no eligible prompt left. A
    short lease (fewer eligible prompts than a chunk) is padded by repeating its prompts, so
    the batch structure holds; their extra completions are not reported.
    """

    def __init__(
        self,
        client: AutoTuneClient,
        pool: str,
        ids: Sequence[Any],
        num_generations: int,
        generation_batch_size: int,
        repeat_count: int = 1,
        book: LeaseBook | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        if num_generations < 1 or generation_batch_size % num_generations:
            raise ValueError(
                f"generation_batch_size {generation_batch_size} must be a multiple of "
                f"num_generations {num_generations}"
            )
        self.client = client
        self.pool = pool
        self.num_generations = num_generations
        self.batch_size = generation_batch_size // num_generations
        self.repeat_count = repeat_count
        self.book = book or LeaseBook()
        self.lease_seconds = lease_seconds
        self.row: dict[str, int] = {}
        for i, v in enumerate(ids):
            if str(v) in self.row:
                raise ValueError(f"prompt id {v!r} appears twice in the dataset")
            self.row[str(v)] = i
        self.chunks = len(self.row) // self.batch_size
        self.dry: str | None = None

    def __len__(self) -> int:
        return self.chunks * self.batch_size * self.num_generations * self.repeat_count

    def _lease(self) -> list[dict]:
        got = None
        if _is_main():
            got = self.client.next(
                self.pool,
                n=self.batch_size,
                purpose="rollouts",
                k=self.num_generations,
                lease_seconds=self.lease_seconds,
            )["prompts"]
        return _broadcast(got)

    def __iter__(self) -> Iterator[int]:
        self.dry = None
        for c in range(self.chunks):
            prompts = self._lease()
            unknown = [p["id"] for p in prompts if p["id"] not in self.row]
            if unknown:
                raise ValueError(
                    f"pool {self.pool!r} leased prompt ids that are not in the dataset "
                    f"(first: {unknown[0]!r}): register the pool with the dataset's ids"
                )
            if not prompts:
                self.dry = (
                    f"pool {self.pool!r} has no eligible prompt left after {c} of "
                    f"{self.chunks} generation batches: the epoch ends here"
                )
                warnings.warn(self.dry, stacklevel=2)
                return
            self.book.add(prompts)
            chunk = [self.row[p["id"]] for p in prompts]
            for i in range(self.batch_size - len(chunk)):
                chunk.append(chunk[i % len(prompts)])
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.num_generations):
                        yield index


class OutcomeReporter:
    """Reports each completion's outcome once, from the main process.

    ``record`` takes the prompt ids and rewards of this process's completions (every process
    calls it, in step); the main process numbers them against the leases and sends one report
    per call. A report that fails is kept, with its idempotency key, and sent again first at
    the next call (or by :meth:`flush`): never lost, never counted twice.
    """

    def __init__(
        self,
        client: AutoTuneClient,
        pool: str,
        book: LeaseBook,
        threshold: float = 0.5,
    ) -> None:
        self.client = client
        self.pool = pool
        self.book = book
        self.threshold = threshold
        self.pending: list[tuple[str, list[dict]]] = []
        self.reported = 0
        self.ignored = 0
        self.released = 0

    def record(self, ids: Sequence[Any], rewards: Sequence[float | None]) -> None:
        pairs = _gather([(str(i), r) for i, r in zip(ids, rewards)])
        if not _is_main():
            return
        results = []
        for pid, r in pairs:
            sample = self.book.take(pid)
            if sample is None:
                self.ignored += 1
                continue
            # A reward function that does not apply to a completion (None) gives no pass.
            correct = r is not None and float(r) > self.threshold
            results.append({"prompt_id": pid, "sample": sample, "correct": correct})
        if results:
            self.pending.append((uuid.uuid4().hex, results))
        self.flush(raise_errors=False)

    def flush(self, raise_errors: bool = True) -> None:
        """Sends what is pending, oldest first; with ``raise_errors`` a report the service
        still cannot take raises, else it stays pending with a warning."""
        while self.pending:
            key, results = self.pending[0]
            try:
                self.client.report(self.pool, results, idempotency_key=key)
            except (ServiceDown, AutoTuneError) as e:
                retryable = isinstance(e, ServiceDown) or e.status >= 500
                if raise_errors or not retryable:
                    raise
                warnings.warn(
                    f"AutoTune: a report of {len(results)} outcomes failed ({e}); kept and "
                    "sent again with the next one",
                    stacklevel=2,
                )
                return
            self.pending.pop(0)
            self.reported += len(results)

    def finish(self) -> None:
        """At the end of training: sends what is pending (raising if the service still cannot
        take it), then releases the leases that were never trained (batches the data loader
        fetched ahead), so that they are eligible again at once."""
        self.flush(raise_errors=True)
        if not _is_main():
            return
        unused = self.book.close_unused()
        if unused:
            self.released += self.client.release(self.pool, unused)["released"]


class AutoTune:
    """One pool of the service, with its leases, its reporter and its sampler factory."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8470",
        pool: str = "trl",
        mask: dict | None = None,
        ids: Sequence[Any] | None = None,
        threshold: float = 0.5,
        id_column: str = "id",
        token: str | None = None,
        client: AutoTuneClient | None = None,
    ) -> None:
        self.client = client or AutoTuneClient(url, token=token)
        self.pool = pool
        self.id_column = id_column
        self.book = LeaseBook()
        self.reporter = OutcomeReporter(self.client, pool, self.book, threshold)
        if mask is not None and ids is not None and _is_main():
            # Fails at once, before training starts, when the service is down.
            self.client.register(pool, mask, [{"id": str(i)} for i in ids])

    def sampler(
        self,
        ids: Sequence[Any],
        num_generations: int,
        generation_batch_size: int,
        repeat_count: int = 1,
    ) -> AutoTuneSampler:
        return AutoTuneSampler(
            self.client, self.pool, ids, num_generations, generation_batch_size, repeat_count, self.book
        )

    def reward(self, reward_func: Callable[..., list]) -> Callable[..., list]:
        """Wraps a TRL reward function: its rewards are returned unchanged and reported."""
        id_column = self.id_column

        def wrapped(prompts: list, completions: list, **kwargs: Any) -> list:
            rewards = reward_func(prompts=prompts, completions=completions, **kwargs)
            if id_column not in kwargs:
                raise KeyError(f"the dataset needs an {id_column!r} column with the pool's prompt ids")
            self.reporter.record(kwargs[id_column], rewards)
            return rewards

        wrapped.__name__ = getattr(reward_func, "__name__", "reward")
        return wrapped


def grpo_trainer_class() -> type:
    """``trl.GRPOTrainer`` with :class:`AutoTuneSampler` as its train sampler, sized from the
    trainer's own arguments; pass ``autotune=AutoTune(...)``. Needs trl."""
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    class _Flush(TrainerCallback):  # type: ignore[misc,valid-type]
        def __init__(self, at: AutoTune) -> None:
            self.at = at

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.at.reporter.finish()
            return control

    class AutoTuneGRPOTrainer(GRPOTrainer):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, autotune: AutoTune, **kwargs: Any) -> None:
            self.autotune = autotune
            callbacks = list(kwargs.pop("callbacks", None) or []) + [_Flush(autotune)]
            super().__init__(*args, callbacks=callbacks, **kwargs)
            # A restart leases afresh instead of leasing and discarding the batches it skips.
            self.args.ignore_data_skip = True

        def _get_train_sampler(self, dataset: Any = None) -> AutoTuneSampler:
            dataset = self.train_dataset if dataset is None else dataset
            return self.autotune.sampler(
                dataset[self.autotune.id_column],
                num_generations=self.num_generations,
                generation_batch_size=self.args.generation_batch_size,
                repeat_count=self.num_iterations * self.args.steps_per_generation,
            )

    return AutoTuneGRPOTrainer
