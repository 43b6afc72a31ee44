"""A rich progress bar for training loops: step, loss, tokens/s, ETA. Disabled by --quiet."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressBar:
    def __init__(self, description: str, total: int, enabled: bool = True, start: int = 0):
        self._progress = None
        if not enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), transient=False,
        )
        self._task = self._progress.add_task(description, total=total, completed=start, loss="-", tps="-")
        self._progress.start()

    def update(self, step: int, row: dict) -> None:
        if self._progress is None:
            return
        fields = {}
        if "loss" in row:
            fields["loss"] = f"{row['loss']:.4f}"
        if "tokens_per_s" in row:
            fields["tps"] = f"{row['tokens_per_s']:,.0f}"
        self._progress.update(self._task, completed=step, **fields)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
