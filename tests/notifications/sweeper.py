"""A sweep in its own process, as a second daemon-launched run or a terminal would start one:
`python -m tests.notifications.sweeper DATABASE_URL PROVIDER_URL [--latency-free]`. Prints its summary."""

import json
import sys

from nightshift.db.engine import create_engine
from nightshift.notifications.sweep import run_sweep
from tests.notifications.fake_provider import fast_settings, wachap_backend_for


def main(database_url: str, provider_url: str) -> None:
    engine = create_engine(database_url)
    summary = run_sweep(engine, fast_settings(), wachap_backend_for(provider_url))
    print(json.dumps(summary.as_dict()), flush=True)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
