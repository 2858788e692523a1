"""Component ids of the live page."""


class Live:
    INTERVAL = "live-interval"
    DAYS = "live-days"
    TILES = "live-tiles"
    UPDATED = "live-updated"
    LAST = "live-last"
    POINTS_FIG = "live-points-figure"
    SIGNUPS_FIG = "live-signups-figure"
    REFERRERS = "live-referrers"
    RECEIVERS = "live-receivers"
    # the enrolled-members tile keeps the id the browser tests wait for
    MEMBERS = "live-members"

    @staticmethod
    def value(key: str) -> str:
        """The id of one tile's number."""
        return "live-members" if key == "enrolled" else f"live-value-{key.replace('_', '-')}"

    @staticmethod
    def label(key: str) -> str:
        """The id of one tile's title (the tooltip's target)."""
        return f"live-label-{key.replace('_', '-')}"
