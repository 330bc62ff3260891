"""Running a plugin's tests with keyloader's deprecations as errors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import KeyloaderDeprecationWarning

__all__ = ["deprecations_as_errors"]


@contextmanager
def deprecations_as_errors() -> Iterator[None]:
    """Within the block, a :class:`~keyloader.errors.KeyloaderDeprecationWarning` is raised
    as an exception: a plugin finds what it must change before the release that removes it.

    In a ``conftest.py``, for a whole suite::

        @pytest.fixture(autouse=True)
        def _no_deprecated_keyloader():
            with keyloader.testing.deprecations_as_errors():
                yield

    (or ``filterwarnings = ["error::keyloader.errors.KeyloaderDeprecationWarning"]`` in
    pytest's configuration).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", KeyloaderDeprecationWarning)
        yield
