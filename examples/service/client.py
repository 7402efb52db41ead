"""The service's Python client, now in the package `python/` (`pip install ./python`,
`from autotune import AutoTuneClient`). This file re-exports it for the examples here
(`trl_callback.py`, `verl_sampler.py`, `test_client.py`), which import `from client import ...`.

See docs/openapi.yaml for the API and docs/guide/trainers.md for the package.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

from autotune.client import AutoTuneClient, AutoTuneError, ServiceDown  # noqa: E402,F401
