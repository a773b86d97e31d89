"""The request path, one stage per module, composed in run.py."""
