"""The curriculum service's HTTP client (standard library only).

    from autotune import AutoTuneClient
    c = AutoTuneClient("http://127.0.0.1:8470", token=os.environ.get("AUTOTUNE_TOKEN"))
    c.register("math", {"strategy": "autotune-cex"}, [{"id": "p0", "prompt": "...", "answer": "4"}])
    batch = c.next("math", n=32, purpose="rollouts", k=8)
    c.report("math", [{"prompt_id": p["id"], "sample": p["sample_base"] + j, "correct": ok} ...])

The API is described in ``docs/openapi.yaml``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Iterable


class AutoTuneError(Exception):
    """An error answer of the service: HTTP status, error type, message, offending field."""

    def __init__(self, status: int, body: Any) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.type: str | None = err.get("type")
        self.field: str | None = err.get("field")
        super().__init__(f"{status} {self.type}: {err.get('message', body)}")


class ServiceDown(ConnectionError):
    """Nobody answers at the service's URL (after the retries)."""


class AutoTuneClient:
    """A client of one ``autotune serve``.

    Transport failures and 503 answers are retried with exponential backoff (``retries``
    times): safe for ``next`` (a lease that is lost expires) and for ``report``, whose
    idempotency key makes a retried report count once.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8470",
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        delay = 0.1
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    return json.loads(r.read() or b"{}")
            except urllib.error.HTTPError as e:
                payload = e.read()
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = payload.decode(errors="replace")
                if e.code != 503 or attempt == self.retries:
                    raise AutoTuneError(e.code, parsed) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if attempt == self.retries:
                    raise ServiceDown(
                        f"the AutoTune service at {self.base} does not answer ({e}); "
                        "is `autotune serve` running, and is the URL right?"
                    ) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def health(self) -> dict:
        return self._call("GET", "/healthz")

    def pools(self) -> list:
        return self._call("GET", "/v1/pools")["pools"]

    def register(
        self,
        name: str,
        mask: dict,
        prompts: Iterable[dict],
        seed: int | None = None,
        lease_seconds: float | None = None,
        chunk: int = 5000,
    ) -> dict:
        """Registers the pool (idempotent), in chunks that stay under the body limit."""
        out: dict = {}
        prompts = list(prompts)
        for i in range(0, max(len(prompts), 1), chunk):
            body: dict[str, Any] = {"name": name, "mask": mask, "prompts": prompts[i : i + chunk]}
            if seed is not None:
                body["seed"] = seed
            if lease_seconds is not None:
                body["lease_seconds"] = lease_seconds
            out = self._call("POST", "/v1/pools", body)
        return out

    def next(
        self,
        pool: str,
        n: int,
        purpose: str = "rollouts",
        k: int | None = None,
        lease_seconds: float | None = None,
    ) -> dict:
        """Leases up to ``n`` prompts chosen by the pool's mask (fewer, even none, when fewer
        are eligible). A rollout lease of ``k`` samples ends when its ``k`` outcomes arrive."""
        body: dict[str, Any] = {"n": n, "purpose": purpose}
        if k is not None:
            body["k"] = k
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        return self._call("POST", f"/v1/pools/{pool}/next", body)

    def report(self, pool: str, results: Iterable[dict], idempotency_key: str | None = None) -> dict:
        """Reports outcomes ``{"prompt_id", "sample", "correct", "tokens"?}``. Give the same
        ``idempotency_key`` when sending the same report again: it then counts once."""
        key = idempotency_key or uuid.uuid4().hex
        return self._call(
            "POST", f"/v1/pools/{pool}/outcomes", {"results": list(results), "idempotency_key": key}
        )

    def release(self, pool: str, prompt_ids: Iterable[str]) -> dict:
        """Ends the leases of ``prompt_ids`` now (leased, never used): they are eligible again
        at once. Returns ``{"released", "not_leased"}``."""
        return self._call("POST", f"/v1/pools/{pool}/release", {"prompt_ids": list(prompt_ids)})

    def advance(self, pool: str, model_version: str | None = None, expected_phase: int | None = None) -> dict:
        """Starts the next phase (a new model: ranks restart)."""
        body: dict[str, Any] = {}
        if model_version is not None:
            body["model_version"] = model_version
        if expected_phase is not None:
            body["expected_phase"] = expected_phase
        return self._call("POST", f"/v1/pools/{pool}/phase", body)

    def state(self, pool: str, offset: int = 0, limit: int = 100) -> dict:
        return self._call("GET", f"/v1/pools/{pool}/state?offset={offset}&limit={limit}")
