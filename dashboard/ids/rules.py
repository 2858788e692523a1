"""Component ids of the rules page."""


class Rules:
    # page-wide
    ACTOR = "rules-actor"  # signed identity for the background simulation
    SAVED = "rules-saved"  # {"select": id} after a save / submit
    DECIDED = "rules-decided"  # after approve / reject / tier pass
    COPIED = "rules-copied"  # after a new draft / rollback
    TOKEN = "rules-token"  # store: this page's form submission token
    IN_FORCE_ID = "rules-in-force-id"
    VERSION = "rules-version"
    VERSION_INFO = "rules-version-info"
    NEW_DRAFT = "rules-new-draft"
    OWN_DRAFT = "rules-own-draft"  # opens the user's newest draft
    OWN_DRAFT_ID = "rules-own-draft-id"
    COPY_RESULT = "rules-copy-result"
    TABS = "rules-tabs"
    # editor
    NAME = "rules-name"
    NAME_FB = "rules-name-feedback"
    NOTE = "rules-note"
    GRID = "rules-grid"
    ADD_TIER = "rules-add-tier"
    REMOVE_TIER = "rules-remove-tier"
    POINT_VALUE = "rules-point-value"
    POINT_VALUE_FB = "rules-point-value-feedback"
    WINDOW_MODE = "rules-window-mode"
    WINDOW_DAYS = "rules-window-days"
    WINDOW_FB = "rules-window-feedback"
    PROBLEMS = "rules-problems"  # store: {field: message}
    SAVE = "rules-save"
    SUBMIT = "rules-submit"
    EDIT_RESULT = "rules-edit-result"
    EXPIRY = "rules-expiry-days"
    EXPIRY_NEVER = "rules-expiry-never"
    EXPIRY_FB = "rules-expiry-feedback"
    EXPIRY_SAVE = "rules-expiry-save"
    EXPIRY_RESULT = "rules-expiry-result"
    # a proposed expiry change waiting for a second supervisor
    EXPIRY_CHANGED = "rules-expiry-changed"  # store: bumped after a proposal or decision
    EXPIRY_PENDING = "rules-expiry-pending"
    EXPIRY_DECIDE_BOX = "rules-expiry-decide-box"
    EXPIRY_REASON = "rules-expiry-reason"
    EXPIRY_APPROVE = "rules-expiry-approve"
    EXPIRY_REJECT = "rules-expiry-reject"
    EXPIRY_DECISION = "rules-expiry-decision"
    # simulation
    SIM_DAYS = "rules-sim-days"
    SIM_RUN = "rules-sim-run"
    SIM_CANCEL = "rules-sim-cancel"
    SIM_PROGRESS = "rules-sim-progress"
    SIM_RESULT = "rules-sim-result"
    # approval
    IN_FORCE = "rules-in-force"
    PENDING_GRID = "rules-pending-grid"
    REVIEW = "rules-review"  # the selected submitted version: diff and simulation
    EFFECTIVE_AT = "rules-effective-at"
    EFFECTIVE_FB = "rules-effective-feedback"
    DECISION_NOTE = "rules-decision-note"
    DECISION_NOTE_FB = "rules-decision-note-feedback"
    APPROVE = "rules-approve"
    REJECT = "rules-reject"
    DECIDE_RESULT = "rules-decide-result"
    REEVALUATE = "rules-reevaluate"
    REEVALUATE_RESULT = "rules-reevaluate-result"
    REEVALUATE_RUNNING = "rules-reevaluate-running"
    # history
    HISTORY_GRID = "rules-history-grid"
    DIFF_A = "rules-diff-a"
    DIFF_B = "rules-diff-b"
    DIFF = "rules-diff"
    ROLLBACK = "rules-rollback"
