"""For security reviewers: audit a plan against a profile, diff two plans by security impact, verify a plan.

All three read the plan (what will actually be done), through one model of it: facts.py.
"""
