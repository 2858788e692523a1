"""Pilots: try a draft rule set on part of a population, measure against a
random control group.

By concern: ``parsing`` (the form's inputs, labels and limits),
``population`` (who is eligible, the stratified draw), ``measures`` (pilot
metrics per member), ``power`` (what the groups can detect), ``lifecycle``
(create, start with four eyes, end, cancel, roll out), ``info`` (read views
for the page) and ``results`` (difference in differences, the verdict, the
CSV). The demo pilot is in db/demo/pilot.py. This package exports what the
pages, the CLI and the benchmarks call.
"""

from db.pilots.info import PilotInfo, pilot_choices, pilot_info, tier_names, trial_rule_sets
from db.pilots.lifecycle import (
    cancel_pilot,
    create_pilot,
    end_pilot,
    request_start,
    rollout_draft,
    send_back_start,
    start_pilot,
)
from db.pilots.parsing import (
    METRIC_LABELS,
    METRIC_UNITS,
    SEGMENT_LABELS,
    MemberFileError,
    parse_member_csv,
    parse_min_effect,
    parse_population,
)
from db.pilots.population import assign_groups, eligible_population
from db.pilots.power import MAX_SEED, PowerPreview, form_problems, pilot_power, power_preview
from db.pilots.results import (
    MetricResult,
    PilotResults,
    bootstrap_resamples,
    min_effect_text,
    pilot_results,
    results_csv,
)

__all__ = [
    "MAX_SEED", "METRIC_LABELS", "METRIC_UNITS", "SEGMENT_LABELS", "MemberFileError",
    "MetricResult", "PilotInfo", "PilotResults", "PowerPreview", "assign_groups",
    "bootstrap_resamples", "cancel_pilot", "create_pilot", "eligible_population", "end_pilot",
    "form_problems", "min_effect_text", "parse_member_csv", "parse_min_effect",
    "parse_population", "pilot_choices", "pilot_info", "pilot_power", "pilot_results",
    "power_preview", "request_start", "results_csv", "rollout_draft", "send_back_start",
    "start_pilot", "tier_names", "trial_rule_sets",
]
