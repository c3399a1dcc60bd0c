#!/usr/bin/env python3
"""The shared test moto (hack/env-up.sh): moto 5.2.5's own server with the idempotency tokens
AWS honours and moto ignores (hack/moto_idempotency.py). Same arguments as moto_server."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import moto_idempotency  # noqa: E402
from moto.server import main  # noqa: E402

if __name__ == "__main__":
    moto_idempotency.apply()
    sys.exit(main())
