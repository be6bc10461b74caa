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
# # Tool sequences and flows: where sessions stop
#
# An agent session is a sequence of tool calls. This notebook shows the sequences the voice
# agent actually ran, how they compare with the flow each intent should follow, where
# callers dropped off, and how long each tool takes. It runs on the bundled sample.

# %%
import sessionlens as sl
from sessionlens import charts

charts.enable_offline()

con = sl.connect()
sl.load(con, sl.datasets.sample_dir())
sl.analyze_sessions(con, progress=False)

# %% [markdown]
# ## The flows
#
# A flow lists, per intent, the tool steps a successful session goes through in order and
# the step that means success. These are the defaults; pass your own to
# `sl.analyze_sessions(con, flows=...)` as a dict or a TOML/JSON/YAML file.

# %%
for intent, flow in sl.DEFAULT_FLOWS.items():
    print(f"{intent:13} {' > '.join(flow.steps)}")

# %% [markdown]
# ## Per-session sequences
#
# `sl.tool_sequences` gives one row per session: the ordered calls (tool, ok, duration,
# repeated, unexpected) and counters. `variant` joins the tool names with `>`.

# %%
sequences = sl.tool_sequences(con)
sequences.to_pandas()[
    ["session_id", "variant", "tool_call_count", "failed_tool_calls", "repeated_calls"]
].head(10)

# %% [markdown]
# ## Sequence variants
#
# Distinct sequences, most frequent first, coloured by the mean completion rate of the
# sessions that followed them. Retries show up as repeated tools
# (`book_appointment > book_appointment`); short red bars are sessions that stopped early.

# %%
variants = sl.sequence_variants(con)
variants.to_pandas().head(10)

# %%
charts.sequence_variants(variants, top=10)

# %% [markdown]
# ## Transitions between tools
#
# Each cell counts how often the column's tool was called right after the row's tool within
# a session; `(start)` and `(end)` mark the first and last call. The diagonal shows retries.

# %%
transitions = sl.tool_transitions(con)
charts.tool_transitions(transitions)

# %% [markdown]
# ## Drop-off funnel
#
# Per intent, the share of its sessions that reached each step of its flow, in flow order.
# The gap between two bars is the share of sessions that stopped there (`dropped_here`).

# %%
funnel = sl.dropoff_funnel(con)
funnel.to_pandas()

# %%
charts.dropoff_funnel(funnel)

# %% [markdown]
# ## Tool latency
#
# The duration of every tool call, per tool; tools with the slowest median come first.

# %%
charts.tool_latency(sequences)
