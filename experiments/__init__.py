"""The studies fastrnn is for: vanilla RNN, LSTM and GRU trained on the same
tasks at several sequence lengths, on fastrnn's kernels (and on torch.nn to
compare). They run from a checkout of the repository, with its root as the
working directory; they are not part of the installed library, and their own
dependencies are in experiments/requirements.txt.

    python -m experiments.compare      next-character prediction across cells and sequence lengths
    python -m experiments.copytask     an encoder-decoder copies sequences longer than it trained on
    python -m experiments.music        next-step prediction on piano rolls of Bach chorales
    python -m experiments.shakespeare  Tiny Shakespeare as the course assignment (make shakespeare)
    python -m experiments.hihell       the course example: an RNN learns "hihell" -> "ihello"

compare and shakespeare stand on charmodels (the models and their FLOP
counts), chartrain (training, evaluation, sampling, checkpoints), corpora (the
texts) and compare_plots (the figures); cli holds the argument types the
command lines share.
"""
