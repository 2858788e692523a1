"""Demo data: a realistic program (rule history, members, a year of orders,
all through the engine) and a demo pilot with a real effect on top of it."""

from db.demo.pilot import DemoPilotReport, seed_demo_pilot
from db.demo.program import UNCHANGED, add_months, ensure_demo_staff, seed

__all__ = ["UNCHANGED", "DemoPilotReport", "add_months", "ensure_demo_staff", "seed",
           "seed_demo_pilot"]
