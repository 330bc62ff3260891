"""An Enterprise Edition implementation of ``aws-kms`` (for tests)."""
