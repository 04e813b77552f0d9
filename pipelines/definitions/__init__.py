"""The code location `nightshift`: every domain's Definitions, merged.

The workspace loads `defs`, a `@dg.definitions` function: settings are read when the code location
loads (once per process: webserver's code server, daemon, each run worker), never at import time, and
a configuration error fails the load naming the key. The CLI calls `build_definitions` with the settings
it already loaded.
"""

import dagster as dg

from nightshift.config import Settings, load_settings
from pipelines.definitions import imports, platform
from resources import shared_resources


def build_definitions(settings: Settings) -> dg.Definitions:
    resources = shared_resources(settings)
    return dg.Definitions.merge(
        platform.definitions(settings, resources),
        imports.definitions(settings, resources),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
