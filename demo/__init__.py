"""The embedded demo: a coordinator and four agency daemons on loopback with generated certificates
and synthetic registers (``make demo``). Depends on :mod:`mpc` and :mod:`parties`; nothing depends on it
except tests and benchmarks."""
