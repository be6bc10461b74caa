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
# # Costs: spend by model, day and intent
#
# Each generation's cost is the cost its source reported or, when absent, its token usage
# times the matching price (bundled genai-prices data, no network). A model with neither is
# never priced at zero silently: it is listed as *unpriced*. This notebook runs on the
# bundled sample.

# %%
import sessionlens as sl
from sessionlens import charts

charts.enable_offline()

con = sl.connect()
sl.load(con, sl.datasets.sample_dir())
sl.analyze_sessions(con, progress=False)

# %% [markdown]
# ## By model
#
# Observations, tokens (input includes cache reads and writes; reasoning is part of output)
# and spend per model. Internal traces (evaluations, experiments) are left out unless
# `include_internal=True`.

# %%
sl.cost_by(con, by="model").to_pandas()

# %% [markdown]
# ## Over time
#
# Daily spend (UTC days) stacked by model.

# %%
daily = sl.cost_by(con, by=["day", "model"])
charts.cost_over_time(daily)

# %% [markdown]
# ## By intent
#
# Intent comes from the analysis, so this shows what each kind of call costs.

# %%
sl.cost_by(con, by="intent").to_pandas()[["intent", "observations", "cost_usd"]]

# %% [markdown]
# ## Per session
#
# The distribution of session spend; a long right tail means a few calls cost far more than
# the typical one (long conversations re-send their whole history to the model).

# %%
charts.cost_per_session(con.table("session_analysis"))

# %% [markdown]
# ## Token usage since a date
#
# `since` takes a date, a datetime or an ISO string (naive means UTC).

# %%
sl.token_usage(con, by=["day", "model"], since="2026-09-10").to_pandas()

# %% [markdown]
# ## Unpriced models
#
# Usage that could be priced neither from a reported cost nor from a price row. Add a row
# with your own prices (`sl.analyze_sessions(con, prices=...)`) to price them. Empty here:
# every generation in the sample reported its cost.

# %%
sl.unpriced_models(con).to_pandas()
