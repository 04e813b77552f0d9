"""Op jobs, one module per domain (asset jobs live beside their assets in assets/)."""
