"""C2PA provenance: every image imagegate stores carries a signed manifest that says a trained model
made it (and which), readable by any C2PA reader (c2pa-python, Adobe's Content Credentials).

- `credentials.py`: the operator's signing chain: its own (`provenance_cert`/`provenance_key`), or
  a CA and an ES256 signing certificate made once in <data_dir>/provenance/.
- `sign.py`: `Sealer.seal(data, fmt, origin)` embeds the manifest (c2pa.created with digital
  source type trainedAlgorithmicMedia; a provider's own manifest kept as the parent ingredient;
  an edit's input images as `inputTo` ingredients).
- `read.py`: what a reader sees (`imagegate provenance verify FILE`).
"""

from __future__ import annotations

from imagegate.provenance.credentials import Credentials, load_credentials
from imagegate.provenance.read import Report, inspect
from imagegate.provenance.sign import Origin, Sealer

__all__ = ["Credentials", "Origin", "Report", "Sealer", "inspect", "load_credentials"]
