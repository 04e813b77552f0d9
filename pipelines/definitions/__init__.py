"""The code location `nightshift`: every domain's Definitions, merged.

The workspace loads `defs`, a `@dg.definitions` function: settings are read when the code location
loads (once per process: webserver's code server, daemon, each run worker), never at import time, and
a configuration error fails the load naming the key. The CLI calls `build_definitions` with the settings
it already loaded.
"""

import gc

import dagster as dg

from nightshift.config import Settings, load_settings
from pipelines.definitions import ai, imports, notifications, platform, quotas, retention
from resources import shared_resources


def build_definitions(settings: Settings) -> dg.Definitions:
    resources = shared_resources(settings)
    definitions = dg.Definitions.merge(
        platform.definitions(settings, resources),
        imports.definitions(settings, resources),
        notifications.definitions(settings, resources),
        quotas.definitions(settings, resources),
        retention.definitions(settings, resources),
        ai.definitions(settings, resources),
        # Each run's steps execute in its run worker: a child process per step would load Dagster, pandas
        # and these definitions a second time, the larger part of a small file's run.
        dg.Definitions(executor=dg.in_process_executor),
    )
    # Every process that runs our code loads this first (run workers, code servers, the CLI): what is
    # loaded by now lives as long as the process, so the run's full collections and the one at exit
    # need not walk it again.
    gc.freeze()
    return definitions


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
