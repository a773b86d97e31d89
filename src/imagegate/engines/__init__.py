"""Engines: one small protocol (base.py), a registry, and the implementations."""
