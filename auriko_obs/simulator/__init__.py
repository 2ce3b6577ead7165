"""A local Auriko-compatible simulator: a real HTTP server on 127.0.0.1 speaking the Auriko contract.

It stands in for an independent server, so it imports nothing else from auriko_obs.

```python
from auriko_obs.simulator import Simulator, SimulatorConfig
with Simulator(SimulatorConfig(seed=1)) as sim:
    client = openai.OpenAI(base_url=sim.base_url, api_key="ak_local")
    sim.inject("budget_exhausted")      # the next request fails like Auriko's budget rejection
    sim.configure(rpm_limit=5)          # knobs change at runtime
    sim.ledger()                        # every inference request, with provider, tokens and cost
```
Control over HTTP for other processes: ``GET /_sim/ledger``, ``POST /_sim/config``, ``POST /_sim/inject``,
``POST /_sim/reset``.
"""

from ._catalog import MODELS
from ._server import Simulator, SimulatorConfig, serve

__all__ = ["MODELS", "Simulator", "SimulatorConfig", "serve"]
