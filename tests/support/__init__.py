"""What more than one test module uses: data builders (factories), HTTP and
Dash request helpers (web), the PostgreSQL test database (postgres), Chromium
(browser, browser_server) and a few programs several modules share (pilots,
rollups). Test modules import their helpers from here and their fixtures from
tests/conftest.py, never from another test module. What the benchmarks use as
well (the small seeded program, Dash request bodies) lives in benchmarks/.
"""
