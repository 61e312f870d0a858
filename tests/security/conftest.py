"""Security tests against served processes share the reliability fixtures."""

from tests.reliability.conftest import cluster, module_cluster

__all__ = ["cluster", "module_cluster"]
