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
# # Bring your own export
#
# Point `EXPORT_PATH` at your own traces and run the notebook top to bottom. It accepts a
# file, a folder or a glob of any format sessionlens loads (the format is detected):
#
# - a Langfuse blob-storage export folder (`traces/`, `observations/`, ... as JSON, JSONL,
#   CSV or Parquet, gzipped or not), API pages, or a UI "download trace" JSON file;
# - an OpenTelemetry OTLP/JSON trace export (`{"resourceSpans": ...}`, or the Collector
#   file exporter's JSON lines) with GenAI, OpenInference or OpenLLMetry attributes;
# - Phoenix spans, OpenAI chat transcripts, planner logs.
#
# Left as `None`, the notebook writes a synthetic OTLP export (40 generated calls) to a
# temporary folder and uses that, so it always runs.

# %%
EXPORT_PATH = None  # e.g. "~/Downloads/langfuse-export/" or "traces.jsonl"
DATABASE = None  # e.g. "traces.duckdb" to keep the loaded data; None keeps it in memory

# %%
import tempfile
from pathlib import Path

import sessionlens as sl
from sessionlens import charts

charts.enable_offline()

if EXPORT_PATH is None:
    generated = sl.datasets.generate(40, seed=3)
    folder = Path(tempfile.mkdtemp(prefix="sessionlens-otlp-"))
    EXPORT_PATH = str(sl.datasets.write_otlp_export(generated, folder, lines=True)[0])
print("Loading", EXPORT_PATH)

# %% [markdown]
# ## Load
#
# Bad records do not stop the load: they go to `load_errors` with file, position and
# reason. Pass `strict=True` to stop at the first one instead.

# %%
con = sl.connect(DATABASE)
result = sl.load(con, EXPORT_PATH)
print(f"{result.traces} traces, {result.sessions} sessions, {result.rejected} rejected")
con.table("load_errors").df().head()

# %% [markdown]
# ## Sessions
#
# Sessions come from the export when it names them; otherwise a user's traces are grouped
# by a 30-minute inactivity gap (`origin` says which).

# %%
con.table("sessions").df().head()

# %% [markdown]
# ## Analyse and look
#
# The default intent taxonomy and flows describe the bundled dental-clinic agent. For your
# own agent, pass `intents=` and `flows=` (a dict or a TOML/JSON/YAML file) to
# `sl.analyze_sessions`; see `docs/intent.md` and `docs/analysis.md`.

# %%
analysis = sl.analyze_sessions(con, progress=False)
print(analysis.sessions, "sessions analysed:", analysis.statuses)

# %%
charts.intent_mix(sl.intent_mix(con))

# %%
charts.sequence_variants(sl.sequence_variants(con), top=8)

# %%
charts.cost_over_time(sl.cost_by(con, by=["day", "model"]))

# %% [markdown]
# ## Every chart at once
#
# `charts.report_charts` builds every chart that has data; `charts.save` writes one as
# `.svg`, `.png`, `.json` or a self-contained `.html` page that opens offline.

# %%
figures = charts.report_charts(con)
out = Path(tempfile.mkdtemp(prefix="sessionlens-charts-"))
[charts.save(chart, out / f"{name}.svg").name for name, chart in figures.items()]
