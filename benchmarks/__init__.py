# A package, so that pytest imports benchmarks/conftest.py as benchmarks.conftest
# and it cannot shadow tests/conftest.py (which the tests import as `conftest`)
# when both directories run in one pytest session.
