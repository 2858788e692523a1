"""Component ids of the shell page."""


class Shell:
    DB_BANNER = "shell-db-banner"
    DB_INTERVAL = "shell-db-interval"
    NAVBAR = "shell-navbar"
    LANGUAGE = "shell-language"  # the navbar's language switch
    LANGUAGE_SAVED = "shell-language-saved"  # set once the choice is stored: reload
