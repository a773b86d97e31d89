"""The offline placeholder engine and its deterministic artwork (Pillow only).

`render(job, index)` paints image `index` of a job: a composition derived from the prompt,
meant to look like something rather than a grey box, with the prompt itself on a frosted
card and a small caption ("imagegate · placeholder · seed 1234 · 1024x1024 · medium").
`partial(final, k, total)` makes the k-th of `total` progressively sharper previews.

How it is made (and where)
    * Palette (`palette`): colour words in the prompt (English and Chinese: "red"/"红",
      "navy"/"藏青", ...), then a few mood words ("autumn"/"秋", "ocean"/"海", "neon"/"霓虹",
      ...), plus dominant colours of the reference images; with none of these, a harmonious
      palette derived from the prompt's hash (so one prompt keeps its colours across seeds).
    * Layout (`layouts`, `scene`, `drawing`): one of six families picked by the job's hash
      (orbits, diagonal bands, a Bauhaus tile grid, a mountain horizon, bokeh lights,
      paper-cut waves), drawn at a reduced working resolution and scaled up (which also
      anti-aliases the shapes), with soft shadows. Text, card and caption (`text`) are drawn
      at full resolution.
    * Detail (`context`): `job.quality` (low/medium/high) and `job.effort`
      (low/medium/high/None) give a detail level 0..6 (quality counts twice, effort shifts it
      by one). Higher levels mean more shapes, finer curves, shadows (none at level 0), film
      grain (none below 2) and a larger working resolution; low levels are faster.
    * Transparency (`compose`): with background "transparent" the backdrop has alpha 0 and
      the composition becomes a sticker-like emblem (circle, rounded square or hexagon with a
      soft drop shadow); only the emblem, its shadow, the card and the text carry alpha.
      With "opaque" every pixel has alpha 255.
    * Edits (`compose`): the base is `job.images[0]` (resized with LANCZOS only when the job
      size differs). With a mask (0 = edit here) the composition, card included, is placed
      in the bounding box of the editable area and composited through the binary mask, so
      every pixel whose mask value is not 0 is bit-identical to the (resized) base. Without
      a mask the whole base is tinted toward the palette, posterised and blended with the
      composition (35 %); a transparent unmasked edit keeps the base's own alpha channel.
    * Reference images (all of them for generations, those after the first for edits)
      feed the palette and appear as small framed, slightly rotated thumbnails.
    * Determinism (`context`): all randomness comes from `random.Random` seeded with a
      SHA-256 of the job's prompt, seed, index, size, quality, background, effort, kind, the
      bytes of the input images and the mask, so the same job and index give byte-identical
      pixels.

Modules, lowest first: palette → context → drawing → layouts → scene → text → compose →
engine.
"""

from imagegate.engines.placeholder.compose import partial, render
from imagegate.engines.placeholder.engine import PlaceholderEngine
from imagegate.engines.placeholder.palette import palette_for

__all__ = ["PlaceholderEngine", "palette_for", "partial", "render"]
