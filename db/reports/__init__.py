"""Read models of the pages that summarise the program (live, overview):
they combine the rollups (db/rollups.py, the write side that keeps them
current) with the KPI definitions (db/metrics.py), and sit above both."""
