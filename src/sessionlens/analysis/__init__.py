"""Analyses over the canonical tables: sessions, tool calls, transcripts (and, later, intents,
flows and costs). Each is a function of the connection, with keyword-only options."""
