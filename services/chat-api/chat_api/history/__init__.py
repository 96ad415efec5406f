"""Conversations stored per person (issue 19): schema (the UI's shape), store (SQL), migrations."""
