"""Exercises client.py against a running service: python3 test_client.py http://127.0.0.1:PORT"""

import sys

from client import AutoTuneClient, AutoTuneError

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8470"
c = AutoTuneClient(url)
assert c.health()["status"] == "ok"
prompts = [{"id": f"q{i}", "prompt": f"{i}+{i}=?", "answer": str(2 * i)} for i in range(10)]
r = c.register("py-cex", {"strategy": "autotune-cex"}, prompts)
assert r["prompts"] == 10, r
b = c.next("py-cex", n=10, purpose="rollouts", k=2)
assert len(b["prompts"]) == 10, b
results = [
    {"prompt_id": p["id"], "sample": p["sample_base"] + j, "correct": int(p["id"][1:]) % 2 == 0}
    for p in b["prompts"]
    for j in range(p["k"])
]
a = c.report("py-cex", results, idempotency_key="py-1")
assert a["accepted"] == 20, a
again = c.report("py-cex", results, idempotency_key="py-1")
assert again["replayed"] and again["accepted"] == 20, again
t = c.next("py-cex", n=10, purpose="teacher")
ids = sorted(int(p["id"][1:]) for p in t["prompts"])
assert ids == [1, 3, 5, 7, 9], ids
s = c.state("py-cex")
assert s["counters"]["outcomes"] == 20 and s["counters"]["teacher_calls_leased"] == 5, s
assert c.advance("py-cex", model_version="m1", expected_phase=0)["phase"] == 1
try:
    c.next("nope", n=1)
    raise SystemExit("expected 404")
except AutoTuneError as e:
    assert e.status == 404 and e.type == "not_found", e
try:
    c.next("py-cex", n=0)
    raise SystemExit("expected 400")
except AutoTuneError as e:
    assert e.status == 400 and e.field == "n", e
print("client.py: all checks passed")
