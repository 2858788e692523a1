"""Component ids of the shell page."""


class Shell:
    DB_BANNER = "shell-db-banner"
    DB_INTERVAL = "shell-db-interval"
    NAVBAR = "shell-navbar"
