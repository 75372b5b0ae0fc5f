"""The results wing: statistics over seeds, claims and their verdicts, result tables, figures,
the sweep report and the generated parts of the docs. Reads sweep folders and archives; nothing
below it imports it."""
