"""Component ids of the pilots page."""


class Pilots:
    TABS = "pilots-tabs"
    REFRESH = "pilots-refresh"  # store: bumped after every change
    TOKEN = "pilots-token"  # store: this page's form submission token
    # list and results
    STATUS = "pilots-status"
    LIST = "pilots-list"
    PICK = "pilots-pick"
    RESULTS = "pilots-results"
    ACTION_MSG = "pilots-action-msg"
    START = "pilots-start"  # "Request start", or "Approve start" once requested
    SEND_BACK = "pilots-send-back"  # refuse a requested start, with a reason
    SEND_BACK_REASON = "pilots-send-back-reason"
    CANCEL = "pilots-cancel"
    END = "pilots-end"
    OVERDUE = "pilots-overdue"  # alert: a running pilot past its planned end
    OVERDUE_TEXT = "pilots-overdue-text"
    END_NOW = "pilots-end-now"  # the alert's end button (supervisors)
    ROLLOUT = "pilots-rollout"
    EXPORT = "pilots-export"
    DOWNLOAD = "pilots-download"
    # the results job (a background callback)
    ACTOR = "pilots-actor"  # store: the signed identity the job re-checks
    RESULTS_PROGRESS = "pilots-results-progress"
    RESULTS_CANCEL = "pilots-results-cancel"
    RESULTS_CSV = "pilots-results-csv"  # store: the export of the results on screen
    # the create form
    NAME = "pilots-new-name"
    RULE_SET = "pilots-new-rule-set"
    SOURCE = "pilots-new-source"
    FILTER_BOX = "pilots-new-filter-box"
    FILE_BOX = "pilots-new-file-box"
    SEGMENTS = "pilots-new-segments"
    TIERS = "pilots-new-tiers"
    JOINED_FROM = "pilots-new-joined-from"
    JOINED_TO = "pilots-new-joined-to"
    ACTIVE_DAYS = "pilots-new-active-days"
    UPLOAD = "pilots-new-upload"
    UPLOAD_INFO = "pilots-new-upload-info"
    SHARE = "pilots-new-share"
    SEED = "pilots-new-seed"
    START_AT = "pilots-new-start-at"
    END_AT = "pilots-new-end-at"
    METRIC = "pilots-new-metric"
    MIN_EFFECT = "pilots-new-min-effect"
    PREVIEW = "pilots-new-preview"
    PREVIEW_OUT = "pilots-new-preview-out"
    CREATE = "pilots-new-create"
    CREATE_MSG = "pilots-new-create-msg"

    # one message next to each field of the form; keys are the services' field names
    FEEDBACK = {
        "name": "pilots-new-name-feedback",
        "rule_set_id": "pilots-new-rule-set-feedback",
        "population": "pilots-new-population-feedback",
        "member_file": "pilots-new-upload-feedback",
        "pilot_share": "pilots-new-share-feedback",
        "seed": "pilots-new-seed-feedback",
        "start_at": "pilots-new-start-feedback",
        "planned_end_at": "pilots-new-end-feedback",
        "primary_metric": "pilots-new-metric-feedback",
        "min_effect": "pilots-new-min-effect-feedback",
    }
