"""The IPython/Jupyter extension: ``%load_ext auriko_obs``.

```python
%load_ext auriko_obs          # instruments openai in this kernel; prints where the data goes
client.chat.completions.create(...)    # the cell ends with a footer: calls, tokens, cost, providers, errors
%auriko_obs                   # this session's totals (same as %auriko_obs status)
%auriko_obs report --since 1h --by provider    # a table and a Plotly figure
%auriko_obs sql SELECT provider, sum(cost_usd) FROM llm_calls GROUP BY ALL      # a DataFrame
%auriko_obs budget 5.00       # calls that would take this session past $5.00 are stopped before they are sent
%auriko_obs footer off        # no footer under cells
%%auriko_obs_track prompt-v2  # (cell magic) the cell's calls carry auriko.experiment = "prompt-v2"; the cell
                              # runs as any other (top-level await, last value shown); %auriko_obs_track NAME
                              # as a line tags the calls of the rest of the cell
%unload_ext auriko_obs        # restores the kernel as it was
```

Calls go to ``$AURIKO_OBS_DB`` or ``./auriko_obs.duckdb`` (or wherever ``auriko_obs.instrument()`` was
already pointed). Each call is tagged with span attributes: ``auriko.notebook.session`` (this load of the
extension), ``auriko.notebook.run`` (this execution of this cell), ``auriko.notebook.cell`` (the
``llm_calls.notebook_cell`` column: the frontend's cell id when it sends one, else ``In[N]``),
``auriko.notebook.cell_id``, ``auriko.notebook.execution_count`` and ``auriko.notebook.path`` (from
VS Code's ``__vsc_ipynb_file__`` or Jupyter Server's ``JPY_SESSION_NAME``, when present). Calls made from
threads the cell started are tagged too: the tags are attached by a pre-call hook, not a context variable.
"""

from __future__ import annotations

from typing import Any

from ._extension import Extension, SessionBudgetExceeded

__all__ = ["Extension", "SessionBudgetExceeded", "current", "load_ipython_extension", "unload_ipython_extension"]

_extension: Extension | None = None


def current() -> Extension | None:
    """Returns the loaded extension, or None."""
    return _extension


def load_ipython_extension(shell: Any) -> None:
    """Instruments the kernel and registers the footer and magics; loading it twice is harmless."""
    global _extension
    if _extension is not None and _extension.shell is shell:
        print(f"auriko-obs: already loaded (session {_extension.session}); %auriko_obs for its totals")
        return
    if _extension is not None:
        unload_ipython_extension(_extension.shell)
    extension = Extension(shell)
    message = extension.load()
    _extension = extension
    print(message)


def unload_ipython_extension(shell: Any) -> None:
    """Restores the kernel: no events, magics, hook or display formatter of ours; uninstruments if we instrumented."""
    global _extension
    if _extension is None:
        return
    extension, _extension = _extension, None
    extension.unload()
