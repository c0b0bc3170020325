"""fuzzrmap: a deterministic thread-interleaving fuzzer for kernel rmap locking."""

__version__ = "0.1.0"
