"""Analyses over the canonical tables, each a function of the connection with keyword-only options.

Derived tables (``sessions``, ``tool_calls``, ``conversation_turns``) are rebuilt by the
loaders; per-session analyses (intent, booking details, flows, goals, cost, tags, status) are
combined by :func:`sessionlens.analyze_sessions` into ``session_analysis``; cross-session
questions (``stats``, ``sequences``, ``cost``) are Ibis expressions over those tables.
"""
