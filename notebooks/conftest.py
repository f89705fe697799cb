"""When nbval runs reference notebooks (``make nbval``, or ``pytest --nbval-lax`` on a file of
``notebooks/reference*/``), refuse a validation that would compare nothing or the wrong code:
see :func:`booktools.reference.guard_nbval_collection`."""

from booktools.reference import guard_nbval_collection


def pytest_collection_modifyitems(session, config, items):
    guard_nbval_collection(config, items)
