"""The comparison's figures (matplotlib, PNG):

    val_accuracy.png   validation accuracy against seq_len, per cell and backend
    train_time.png     training time against seq_len, per cell and backend
    loss_curves.png    training (solid) and validation (dashed) loss per epoch,
                       one panel per seq_len

One colour per cell; fastrnn solid with dots, torch.nn dashed with hollow
squares, so that where the backends agree the lines lie on each other.
"""

__all__ = ["COLOURS", "pyplot", "plot_all"]

COLOURS = {
    "rnn": "tab:blue",
    "lstm": "tab:orange",
    "gru": "tab:green",
    "cnn": "tab:red",
    "attention": "tab:purple",
}
# torch.nn hollow and larger, so that fastrnn's marks stay visible inside them
STYLE = {
    "fastrnn": dict(linestyle="-", marker="o", markersize=5),
    "torch": dict(linestyle="--", marker="s", markersize=10, markerfacecolor="none"),
}


def pyplot():
    """matplotlib's pyplot drawing into files only (Agg); ImportError
    without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(cell, backend):
    return f"{cell} ({'torch ops' if cell in ('cnn', 'attention') else backend})"


def _against_seq_len(plt, rows, key, ylabel, title, path, scale=1.0):
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    series = sorted(
        {(r["cell"], r["backend"]) for r in rows},
        key=lambda cb: (list(COLOURS).index(cb[0]), cb[1]),
    )
    for cell, backend in series:
        pts = sorted(
            (r["seq_len"], scale * r[key])
            for r in rows
            if r["cell"] == cell and r["backend"] == backend
        )
        ax.plot(*zip(*pts), color=COLOURS[cell], label=_label(cell, backend), **STYLE[backend])
    ax.set_xticks(sorted({r["seq_len"] for r in rows}))
    ax.set_xlabel("sequence length")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _loss_curves(plt, curves, path):
    seq_lens = sorted({c["seq_len"] for c in curves})
    fig, axes = plt.subplots(
        1, len(seq_lens), figsize=(4.2 * len(seq_lens), 3.6), squeeze=False, sharey=True
    )
    for ax, seq_len in zip(axes[0], seq_lens):
        shown = set()
        for c in curves:
            # torch.nn's curves lie on fastrnn's (same seed): draw one of them
            if c["seq_len"] != seq_len or c["cell"] in shown:
                continue
            shown.add(c["cell"])
            epochs = range(1, len(c["train_loss"]) + 1)
            colour = COLOURS[c["cell"]]
            ax.plot(epochs, c["train_loss"], color=colour, label=f"{c['cell']} train")
            ax.plot(epochs, c["val_loss"], color=colour, linestyle="--", label=f"{c['cell']} val")
        ax.set_title(f"seq_len {seq_len}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("cross-entropy (nats / character)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(rows, curves, out):
    """Writes the three figures into the folder `out`; returns their paths.
    Raises ImportError without matplotlib."""
    plt = pyplot()
    return [
        _against_seq_len(
            plt,
            rows,
            "val_accuracy",
            "validation accuracy (%)",
            "next-character accuracy, top-1",
            out / "val_accuracy.png",
            100.0,
        ),
        _against_seq_len(
            plt,
            rows,
            "train_time_s",
            "training time (s)",
            "training wall time",
            out / "train_time.png",
        ),
        _loss_curves(plt, curves, out / "loss_curves.png"),
    ]
