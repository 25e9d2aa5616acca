"""Credential sources of both vendors (short-lived keys from roles, OIDC and instance metadata), refreshed."""
