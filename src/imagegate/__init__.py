"""imagegate: a self-hosted, OpenAI-compatible image-generation gateway."""

__version__ = "0.1.0"
