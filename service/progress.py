"""Progress of the long dead-letter operations (requeue, purge, import) on stderr.

On a terminal: a rich bar with the count, the total and the time left. Otherwise (a
log, a CI job, a pipe): one plain line every `PLAIN_INTERVAL_SECONDS`, such as
`requeued 120/600, 2.0/s, about 4m left`, so a paced requeue is never minutes of silence.
Stdout is left alone: it carries the command's result (and its JSON).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

PLAIN_INTERVAL_SECONDS = 5.0


def duration(seconds: float) -> str:
    """`45s`, `4m`, `1h 5m`: rounded up to what a person waits for."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes = -(-whole // 60)
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h {minutes % 60}m"


class PlainProgress:
    """A line every `interval` seconds while messages are handled: done/total, the rate so
    far and the time left at that rate."""

    def __init__(
        self,
        verb: str,
        write: Callable[[str], None],
        interval: float = PLAIN_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verb, self._write, self._interval, self._clock = verb, write, interval, clock
        self._total: int | None = None
        self._done = 0
        self._started = self._last = clock()

    def start(self, total: int) -> None:
        self._total = total
        self._started = self._last = self._clock()

    def advance(self, done: int) -> None:
        self._done += done
        now = self._clock()
        if now - self._last >= self._interval and self._done != self._total:
            self._last = now
            self._write(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        if self._total is None:
            return f"{self._verb} {self._done}, {rate:.1f}/s"
        left = self._total - self._done
        eta = f", about {duration(left / rate)} left" if rate > 0 else ""
        return f"{self._verb} {self._done}/{self._total}, {rate:.1f}/s{eta}"


class BarProgress:
    """The rich bar, for a terminal."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def start(self, total: int) -> None:
        self._progress.update(self._task, total=total)

    def advance(self, done: int) -> None:
        self._progress.advance(self._task, done)


@contextmanager
def progress_on(console: Console, verb: str) -> Iterator[PlainProgress | BarProgress]:
    """A progress report on `console` (stderr): a bar on a terminal, else plain lines naming
    `verb` (`requeued`, `purged`, `imported`)."""
    if not console.is_terminal:
        yield PlainProgress(verb, lambda line: console.print(line, soft_wrap=True, markup=False))
        return
    with Progress(
        TextColumn(verb),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield BarProgress(progress, progress.add_task(verb, total=None))
