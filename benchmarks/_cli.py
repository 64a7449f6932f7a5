"""The command-line options that the benchmarks share."""

import argparse


def bench_parser(doc, repeats, data_home=True):
    """A parser described by ``doc``'s first paragraph, with ``--data-home``
    (unless ``data_home`` is false), ``--repeats`` (default ``repeats``) and
    ``--threads`` (torch threads, default 2)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if data_home:
        parser.add_argument("--data-home", default=None, help="scikit-learn data home (default: ~/scikit_learn_data)")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    return parser
