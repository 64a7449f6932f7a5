"""matplotlib for the experiments' figures, which the package does not require."""


def new_figure(**kwargs):
    """A ``matplotlib.figure.Figure`` (no pyplot, no global backend change).

    Raises
    ------
    ImportError
        If matplotlib is not installed, with the command that installs it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The experiments' figures need matplotlib, which sklearn-mmoe does not "
            'install. Install it with: pip install matplotlib (or pip install "sklearn-mmoe[plot]")'
        ) from exc
    return Figure(**kwargs)
