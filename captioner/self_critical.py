from .training.self_critical import SelfCritical  # noqa: F401  until tests/test_search.py imports it from there
