# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Overview: what callers wanted and whether they got it
#
# This notebook loads the bundled sample (60 calls to a children's dental clinic's voice
# agent, exported from Langfuse as a blob export), analyses every session and shows the
# questions most people ask first: how many sessions, what callers wanted, how often the
# agent completed the task, and what it cost.
#
# Everything here uses the public API: `import sessionlens as sl` and
# `from sessionlens import charts`. Charts render offline (no CDN) through vl-convert.

# %%
import sessionlens as sl
from sessionlens import charts

charts.enable_offline()  # SVG charts drawn in the kernel; no 5,000-row limit

# %% [markdown]
# ## Load
#
# `sl.load` detects the format, maps every record to the canonical tables and reports what
# it wrote. An in-memory database is enough here; pass a path to keep it.

# %%
con = sl.connect()
result = sl.load(con, sl.datasets.sample_dir())
print(f"{result.traces} traces, {result.sessions} sessions, {result.rejected} rejected")

# %% [markdown]
# ## Analyse
#
# `sl.analyze_sessions` classifies each session's intent, measures how far it got through
# its intent's flow, sets its status and cost, and caches one row per session in
# `session_analysis`. Re-running it recomputes only sessions whose inputs changed.
# Internal traces (evaluations, experiments) are left out by default.

# %%
analysis = sl.analyze_sessions(con, progress=False)
print(analysis.statuses)
con.table("session_analysis").df()[
    ["session_id", "caller_intent_type", "status", "completion_rate", "drop_off_step", "cost_usd"]
].head(10)

# %% [markdown]
# ## What callers wanted
#
# The intent mix counts sessions per classified intent; `mean_confidence` says how sure the
# rule classifier was on average.

# %%
mix = sl.intent_mix(con)
mix.to_pandas()

# %%
charts.intent_mix(mix)

# %% [markdown]
# ## Did the agent get them there?
#
# A session is *completed* when it reached its flow's success step. The bar is the share of
# completed sessions per intent; hover (interactive mode) or read the table for the mean
# completion rate, the share of flow steps reached.

# %%
completion = sl.completion_by_intent(con)
completion.to_pandas()

# %%
charts.completion_by_intent(completion)

# %% [markdown]
# ## Sessions over time
#
# Sessions started per day (UTC), coloured by status: completed, abandoned (the caller hung
# up before the flow ended), failed (a tool kept erroring) or in progress.

# %%
sessions = con.table("session_analysis")
charts.status_over_time(sessions)

# %% [markdown]
# ## What it cost
#
# Spend per session, from the cost each generation reported or, when absent, from token
# usage and the bundled price table. Sessions with nothing priced are counted apart.

# %%
sl.session_stats(con, by="status").to_pandas()

# %%
charts.cost_per_session(sessions)
