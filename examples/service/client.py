"""AutoTune curriculum service: a Python client (standard library only).

    from client import AutoTuneClient
    c = AutoTuneClient("http://127.0.0.1:8470", token=os.environ.get("AUTOTUNE_TOKEN"))
    c.register("math", {"strategy": "autotune-cex"}, [{"id": "p0", "prompt": "...", "answer": "4"}])
    batch = c.next("math", n=32, purpose="rollouts", k=8)
    c.report("math", [{"prompt_id": p["id"], "sample": p["sample_base"] + j, "correct": ok} ...])

See docs/openapi.yaml for the API.
"""

import json
import time
import urllib.error
import urllib.request
import uuid


class AutoTuneError(Exception):
    """An error answer: HTTP status, error type, message and offending field."""

    def __init__(self, status, body):
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.type = err.get("type")
        self.field = err.get("field")
        super().__init__(f"{status} {self.type}: {err.get('message', body)}")


class AutoTuneClient:
    def __init__(self, base_url="http://127.0.0.1:8470", token=None, timeout=60.0, retries=5):
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries

    def _call(self, method, path, body=None):
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
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                # Transport failure: retrying is safe for reports (idempotency key) and for
                # `next` (a lost lease expires).
                if attempt == self.retries:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def health(self):
        return self._call("GET", "/healthz")

    def pools(self):
        return self._call("GET", "/v1/pools")["pools"]

    def register(self, name, mask, prompts, seed=None, lease_seconds=None, chunk=5000):
        """Registers the pool (idempotent) in chunks that stay under the body limit."""
        out = None
        prompts = list(prompts)
        for i in range(0, max(len(prompts), 1), chunk):
            body = {"name": name, "mask": mask, "prompts": prompts[i : i + chunk]}
            if seed is not None:
                body["seed"] = seed
            if lease_seconds is not None:
                body["lease_seconds"] = lease_seconds
            out = self._call("POST", "/v1/pools", body)
        return out

    def next(self, pool, n, purpose="rollouts", k=None, lease_seconds=None):
        body = {"n": n, "purpose": purpose}
        if k is not None:
            body["k"] = k
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        return self._call("POST", f"/v1/pools/{pool}/next", body)

    def report(self, pool, results, idempotency_key=None):
        """Reports outcomes; a fresh idempotency key makes retries safe (counted once)."""
        key = idempotency_key or uuid.uuid4().hex
        return self._call(
            "POST", f"/v1/pools/{pool}/outcomes", {"results": list(results), "idempotency_key": key}
        )

    def advance(self, pool, model_version=None, expected_phase=None):
        body = {}
        if model_version is not None:
            body["model_version"] = model_version
        if expected_phase is not None:
            body["expected_phase"] = expected_phase
        return self._call("POST", f"/v1/pools/{pool}/phase", body)

    def state(self, pool, offset=0, limit=100):
        return self._call("GET", f"/v1/pools/{pool}/state?offset={offset}&limit={limit}")
