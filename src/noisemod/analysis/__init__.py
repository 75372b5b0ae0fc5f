"""The results wing: statistics over seeds, claims and their verdicts, result tables, figures,
the sweep report and the generated parts of the docs. Reads sweep folders and archives; nothing
below it imports it."""

from pathlib import Path

#: the claims file that comes with the package (package data of the wheel): `noisemod claims`'s default
CLAIMS = Path(__file__).with_name("claims.yaml")
