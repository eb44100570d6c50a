"""TLS for a cluster: where its certificates come from, when they are re-issued, how clients trust them.

- `issue`: a per-cluster CA and the server certificate it signs (`cryptography`), and the facts read
  back from a PEM certificate. No I/O.
- `rotation`: the decisions (re-issue the server certificate or the CA? reload a running mysqld?).
  Pure functions of facts and `now`.
- `manifests`: the Secrets the operator writes and cert-manager's `Certificate`. Pure.
- `client`: how the operator's own connections trust and verify a server (an `ssl.SSLContext`).
"""
