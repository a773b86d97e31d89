"""Thin routes: parse the wire, call the flow, render the result or the error."""
