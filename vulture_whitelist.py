"""Names vulture cannot see used (tests/test_architecture.py runs it with the
[tool.vulture] settings in pyproject.toml). Framework entry points are kept
out by --ignore-decorators / --ignore-names there; this file lists the few
left, each with the reason it stays. Code used only by tests is dead: do not
add it here, delete it."""

from db import metrics
from db.ratelimit import LimitStore

# The rate-limit stores' reset: part of the LimitStore interface, for an
# operator clearing the limits (the test fixtures empty the store with it).
LimitStore.reset

# The KPI definitions one by one (average check, purchase frequency, repeat
# purchase, redemption and breakage rates): kpi_snapshot computes all of them
# from one pass over the orders and the flows; these read a single KPI.
metrics.average_check
metrics.purchase_frequency
metrics.repeat_purchase_rate
metrics.redemption_rate
metrics.breakage_rate
