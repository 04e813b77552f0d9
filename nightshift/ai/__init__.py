"""AI content generation for imported businesses: versioned prompt templates, validators, the request state
machine on `ai_requests`, a rate limit shared through the database, and generation metered by the token
ledger (every call reserves, then settles or releases). Uses the quotas domain through its named API only
(`nightshift.quotas.TokenLedger`)."""
