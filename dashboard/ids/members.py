"""Component ids of the members page."""


class Members:
    QUERY = "members-query"
    FIELD = "members-field"
    QUERY_FEEDBACK = "members-query-feedback"
    GRID = "members-grid"
    COUNT = "members-count"
    SEARCH_REFRESH = "members-search-refresh"  # clientside: purge the grid cache
    MEMBER = "members-selected"  # store: the member shown below the search
    PROFILE = "members-profile"
    LEDGER = "members-ledger"
    LEDGER_KIND = "members-ledger-kind"
    LEDGER_GRID = "members-ledger-grid"
    LEDGER_COUNT = "members-ledger-count"
    LEDGER_REFRESH = "members-ledger-refresh"
    ORDERS = "members-orders"
    REFERRALS = "members-referrals"
    TRANSFERS = "members-transfers"
    ADJUSTMENTS = "members-adjustments"
    BALANCE = "members-balance"
