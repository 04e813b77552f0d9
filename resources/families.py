"""Run tags shared by every job: the family tag drives the run-queue limits in dagster.yaml. Pools
limit runs that carry no family tag (asset backfills); `nightshift init` gives them their dagster.yaml
default limit on the instance (the run queue lets every run through the first time it meets a pool it
has no limit for)."""

FAMILY_TAG = "nightshift/family"
FAMILIES = ("imports", "sweeps", "ai", "maintenance")
IMPORTS_POOL = "imports"
AI_POOL = "ai"
POOLS = (IMPORTS_POOL, AI_POOL)


def family_tags(family: str) -> dict[str, str]:
    if family not in FAMILIES:
        raise ValueError(f"unknown job family {family!r}; add it to FAMILIES and dagster.yaml")
    return {FAMILY_TAG: family}


def initialize_pools(instance) -> None:
    """Give each pool the instance's default limit (`concurrency.pools.default_limit`)."""
    for pool in POOLS:
        instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
