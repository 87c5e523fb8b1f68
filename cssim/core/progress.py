"""Progress bars shared by long runs (simulations, bootstrap refits)."""

__all__ = ["progress_bar_class"]


def progress_bar_class(progress: bool):
    """tqdm's notebook-aware bar when progress is shown; the plain one otherwise.

    Importing ``tqdm.auto`` in a notebook without ipywidgets warns ("IProgress
    not found") even for a bar that is never shown.
    """
    if progress:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm
