"""Component ids of the audit page."""


class Audit:
    ACTOR = "audit-actor"
    ACTION = "audit-action"
    DATES = "audit-dates"
    DATES_FEEDBACK = "audit-dates-feedback"
    GRID = "audit-grid"
    COUNT = "audit-count"
    EXPORT = "audit-export"
    DOWNLOAD = "audit-download"
