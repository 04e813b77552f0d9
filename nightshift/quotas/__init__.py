"""Token quotas: accounts with a monthly quota, monthly periods, and the append-only token ledger.

Other domains use the named API only: `TokenLedger` (reserve, settle, release, grant) and its errors
`QuotaError`, `InsufficientTokens`.
"""

from nightshift.quotas.ledger import InsufficientTokens, TokenLedger
from nightshift.quotas.periods import QuotaError

__all__ = ["InsufficientTokens", "QuotaError", "TokenLedger"]
