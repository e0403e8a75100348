"""On call: teams, their rotations and overrides, and who is on call at an instant.
rotation.py is the pure time math, teams.py the rules and use cases, store.py the DynamoDB items.
Imported only by the views that need it (docs/cold-start.md). Rules: docs/oncall.md."""
