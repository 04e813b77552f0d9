"""Token quotas: accounts with a monthly token quota (the ledger and periods build on them)."""
