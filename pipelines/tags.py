"""Run tags shared by every job: the family tag drives the run-queue limits in dagster.yaml."""

FAMILY_TAG = "nightshift/family"
FAMILIES = ("imports", "sweeps", "ai", "maintenance")


def family_tags(family: str) -> dict[str, str]:
    if family not in FAMILIES:
        raise ValueError(f"unknown job family {family!r}; add it to FAMILIES and dagster.yaml")
    return {FAMILY_TAG: family}
