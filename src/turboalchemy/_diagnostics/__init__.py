"""Query diagnostics: count statements, catch N+1 patterns, log slow queries, read plans, pool state."""

from turboalchemy._diagnostics.counting import QueryCount, count_queries
from turboalchemy._diagnostics.explain import Finding, QueryPlan, explain
from turboalchemy._diagnostics.nplusone import NPlusOneReport, no_n_plus_one, raiseload_all
from turboalchemy._diagnostics.pool import pool_status
from turboalchemy._diagnostics.slowlog import SlowQueryLog, log_slow_queries

__all__ = [
    "Finding",
    "NPlusOneReport",
    "QueryCount",
    "QueryPlan",
    "SlowQueryLog",
    "count_queries",
    "explain",
    "log_slow_queries",
    "no_n_plus_one",
    "pool_status",
    "raiseload_all",
]
