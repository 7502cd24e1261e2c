"""
Hypothesis profiles of the fuzz tests: ``fuzz`` sized for the default suite, ``fuzz-hostile``
(thousands of examples) for ``make test-hostile``. Tests apply them with
``settings(settings.get_profile(PROFILE), max_examples=...)``, so the rest of the suite
keeps Hypothesis's own defaults.

The servers are started once per test and fed every example, so the function-scoped
fixture health check does not apply; examples wait on real sockets, so no deadline.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
    print_blob=True,
)
settings.register_profile("fuzz", max_examples=200, **_COMMON)
settings.register_profile("fuzz-hostile", max_examples=5000, **_COMMON)
