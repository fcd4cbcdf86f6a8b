"""`adapter: jury`: several judges combined into one (see `mjbench.jury` for the definitions).

A jury is declared like any judge:

```yaml
name: my-jury
adapter: jury
options: {members: [pickscore-v1, hps-v2.1, gpt-4o@1-10], method: vote}   # mean, vote or borda
```

It is never asked a request. `mjbench run` runs its members (also those not asked for) and then derives the
jury's records from theirs (`mjbench.jury.add_jury_records`), so the jury is benchmarked beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from mjbench.adapters.base import ADAPTERS, Capabilities, Judge, PairRequest, Response, ScoreRequest
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError
from mjbench.jury import JURY_SCALE, JuryOptions, catalog_for, jury_identity, jury_problems


@ADAPTERS.register("jury")
class JuryJudge(Judge):
    """A jury of member judges; its records are derived from theirs, never asked for."""

    #: needs_pixels False: if a runner ever planned it, no image would be read for it
    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single", "pair"), batchable=False,
                                                        needs_pixels=False)
    Options = JuryOptions
    version = "1"

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        if list(config.scales) != [JURY_SCALE]:
            raise ConfigError(f"{config.path or config.name}: scales: a jury's records have the scale "
                              f"{JURY_SCALE!r} (members keep their own: options.members: [name@scale, ...])")
        self.catalog: Any = None  # the run's catalog where one is at hand; else the jury's own folder

    def _catalog(self) -> Any:
        if self.catalog is None:
            self.catalog = catalog_for(self.config)
        return self.catalog

    def identity(self) -> dict[str, Any]:
        """The jury's own fields (members, method) and every member's identity."""
        return {"adapter_version": self.version, **jury_identity(self.config, self._catalog())}

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        """An unknown member, a jury as a member, or a member that cannot run here, in one line."""
        return jury_problems(config, catalog_for(config))

    def _never(self) -> list[Response]:
        raise NotImplementedError(
            f"judge {self.config.name} is a jury: it is never asked; the runner derives its records from its "
            "members' (mjbench.jury.add_jury_records)")

    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        return self._never()

    def compare(self, requests: Sequence[PairRequest]) -> list[Response]:
        return self._never()
