"""Progress bars (tqdm, with ETA) for long loops: training epochs and evaluation passes."""

from __future__ import annotations

__all__ = ["progress_bar", "progress_per_pass"]


def progress_bar(iterable, desc: str, **kwargs):
    """A tqdm progress bar with ETA that disappears when done."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, **kwargs)


class _PerPass:
    """A re-iterable progress bar over a loader: each pass gets its own bar."""

    def __init__(self, iterable, desc: str):
        self.iterable, self.desc = iterable, desc

    def __len__(self):
        return len(self.iterable)

    def __iter__(self):
        return iter(progress_bar(self.iterable, self.desc))


def progress_per_pass(iterable, enabled: bool, desc: str):
    """``iterable`` with a fresh progress bar on each pass when ``enabled``, else ``iterable`` itself."""
    return _PerPass(iterable, desc) if enabled else iterable
