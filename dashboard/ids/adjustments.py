"""Component ids of the adjustments pages (request; approvals and history)."""


class AdjRequest:
    MEMBER = "adjreq-member"
    MEMBER_INFO = "adjreq-member-info"
    MEMBER_FEEDBACK = "adjreq-member-feedback"
    POINTS = "adjreq-points"
    POINTS_FEEDBACK = "adjreq-points-feedback"
    REASON = "adjreq-reason"
    REASON_FEEDBACK = "adjreq-reason-feedback"
    COMMENT = "adjreq-comment"
    COMMENT_FEEDBACK = "adjreq-comment-feedback"
    TICKET = "adjreq-ticket"
    TICKET_FEEDBACK = "adjreq-ticket-feedback"
    ENTRY = "adjreq-entry"
    ENTRY_FEEDBACK = "adjreq-entry-feedback"
    SUBMIT = "adjreq-submit"
    RESULT = "adjreq-result"
    LIMITS = "adjreq-limits"
    VERSION = "adjreq-version"  # store: bumped when a request is filed
    TOKEN = "adjreq-token"  # store: this form instance's submission token
    LAST_TOKEN = "adjreq-last-token"  # store: the token of the request filed last
    CANCEL_VERSION = "adjreq-cancel-version"
    STATUS = "adjreq-status"
    GRID = "adjreq-grid"
    TABLE = "adjreq-table"
    SUMMARY = "adjreq-summary"
    CANCEL = "adjreq-cancel"
    CANCEL_RESULT = "adjreq-cancel-result"


class AdjReview:
    # approval queue (supervisors)
    QUEUE = "adjreview-queue"
    QUEUE_COUNT = "adjreview-queue-count"
    QUEUE_REFRESH = "adjreview-queue-refresh"
    SELECTED = "adjreview-selected"  # store: the request id the panel shows
    DETAIL = "adjreview-detail"
    APPROVE = "adjreview-approve"
    REJECT = "adjreview-reject"
    REJECT_REASON = "adjreview-reject-reason"
    REJECT_FEEDBACK = "adjreview-reject-feedback"
    DECISION = "adjreview-decision"
    VERSION = "adjreview-version"  # store: bumped after a decision
    TOKEN = "adjreview-token"  # store: the decision form's submission token
    # history (everyone on the page; support sees only their own)
    STATUS = "adjreview-status"
    REQUESTER = "adjreview-requester"
    APPROVER = "adjreview-approver"
    REASON = "adjreview-reason"
    DATES = "adjreview-dates"
    DATES_FEEDBACK = "adjreview-dates-feedback"
    EXPORT = "adjreview-export"
    DOWNLOAD = "adjreview-download"
    GRID = "adjreview-grid"
    TABLE = "adjreview-table"
    SUMMARY = "adjreview-summary"
