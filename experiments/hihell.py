"""The course example: an RNN taught to turn "hihell" into "ihello", the
next character of "hihello" at every position, as the course notes write it
with torch.nn.RNN, here on fastrnn.RNN.

    python -m experiments.hihell                   # the three variants on fastrnn.RNN
    python -m experiments.hihell --backend torch   # the same on torch.nn.RNN

The notes' three variants, with their sizes, loss, optimizer and epochs
(torch.manual_seed(777), cross-entropy, Adam at lr 0.1, hidden 5):

    step       one-hot input fed one character at a time, the hidden state
               carried from call to call; the loss summed over the six
               characters; 100 epochs. The RNN's 5 outputs are the logits.
    onehot     the six one-hot characters as one sequence [1, 6, 5]; the
               mean loss; 100 epochs. The RNN's outputs are the logits. The
               notebook drew its weights after the step variant's, with no
               new seed: so does this one, and starts from the same weights.
    embedding  character ids through an embedding of 10, an RNN of 5 and a
               linear layer of 5 -> 5; 50 epochs.

Each prints the predicted string and the loss after every epoch, as the
notes do. fastrnn.RNN initialises its weights as torch.nn.RNN does, so the
same seed gives the same model under either backend.
"""

import argparse
import sys

import torch
from torch import nn

import fastrnn

__all__ = ["IDX2CHAR", "X_DATA", "Y_DATA", "VARIANTS", "train_variant", "main"]

IDX2CHAR = ["h", "i", "e", "l", "o"]
X_DATA = [0, 1, 0, 2, 3, 3]  # hihell
Y_DATA = [1, 0, 2, 3, 3, 4]  # ihello
NUM_CLASSES = 5
INPUT_SIZE = 5  # one-hot size
HIDDEN_SIZE = 5  # the RNN's output: 5, to predict the one-hot character directly
EMBEDDING_SIZE = 10
SEED = 777
LR = 0.1
BACKENDS = {"fastrnn": fastrnn.RNN, "torch": nn.RNN}


class StepModel(nn.Module):
    """One character per call: forward(hidden, x) -> (hidden, logits [1, 5])."""

    def __init__(self, rnn_cls):
        super().__init__()
        self.rnn = rnn_cls(input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE, batch_first=True)

    def forward(self, hidden, x):
        x = x.view(1, 1, INPUT_SIZE)  # (batch, seq_len, input_size)
        out, hidden = self.rnn(x, hidden)
        return hidden, out.view(-1, NUM_CLASSES)

    def init_hidden(self):
        # (num_layers * directions, batch, hidden)
        return torch.zeros(1, 1, HIDDEN_SIZE, dtype=self.rnn.weight_hh_l0.dtype)


class OneHotModel(nn.Module):
    """The whole sequence at once: one-hot [batch, 6, 5] -> logits [batch * 6, 5]."""

    def __init__(self, rnn_cls):
        super().__init__()
        self.rnn = rnn_cls(input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE, batch_first=True)

    def forward(self, x):
        h_0 = torch.zeros(1, x.size(0), HIDDEN_SIZE, dtype=x.dtype)
        out, _ = self.rnn(x, h_0)
        return out.reshape(-1, NUM_CLASSES)


class EmbeddingModel(nn.Module):
    """ids [batch, 6] -> embedding 10 -> RNN 5 -> linear 5 -> logits [batch * 6, 5]."""

    def __init__(self, rnn_cls):
        super().__init__()
        self.embedding = nn.Embedding(INPUT_SIZE, EMBEDDING_SIZE)
        self.rnn = rnn_cls(input_size=EMBEDDING_SIZE, hidden_size=HIDDEN_SIZE, batch_first=True)
        self.fc = nn.Linear(HIDDEN_SIZE, NUM_CLASSES)

    def forward(self, x):
        h_0 = torch.zeros(1, x.size(0), HIDDEN_SIZE, dtype=self.fc.weight.dtype)
        out, _ = self.rnn(self.embedding(x), h_0)
        return self.fc(out.reshape(-1, HIDDEN_SIZE))


def _one_hot(ids, dtype=torch.float32):
    return torch.eye(INPUT_SIZE, dtype=dtype)[ids]


def _dtype(model):
    return next(model.parameters()).dtype


def _epoch_step(model, criterion):
    """One epoch of the step variant: (loss summed over the characters,
    predicted ids). The prediction of each character is made before the
    update, as the notes print it."""
    inputs, labels = _one_hot(torch.tensor(X_DATA), _dtype(model)), torch.tensor(Y_DATA)
    hidden = model.init_hidden()
    loss, predicted = 0, []
    for x, label in zip(inputs, labels):
        hidden, output = model(hidden, x)
        predicted.append(output.argmax(1).item())
        loss = loss + criterion(output, label.view(-1))
    return loss, predicted


def _epoch_sequence(model, criterion, inputs):
    outputs = model(inputs)
    return criterion(outputs, torch.tensor(Y_DATA)), outputs.argmax(1).tolist()


# variant -> (model class, epochs, inputs of the sequence variants, models
# the notebook built after seeding and before this one)
VARIANTS = {
    "step": (StepModel, 100, None, ()),
    "onehot": (
        OneHotModel,
        100,
        lambda dtype: _one_hot(torch.tensor([X_DATA]), dtype),
        (StepModel,),
    ),
    "embedding": (EmbeddingModel, 50, lambda dtype: torch.tensor([X_DATA]), ()),
}


def train_variant(variant, backend="fastrnn", epochs=None, log=None, dtype=torch.float32):
    """Train one variant as the notes do; returns (model, history), history
    a list of (loss, predicted string) per epoch. log(line) gets the notes'
    lines. The notes train in float32; float64 is for comparing backends."""
    model_cls, default_epochs, make_inputs, built_before = VARIANTS[variant]
    torch.manual_seed(SEED)
    for earlier in built_before:  # their weights come first out of the generator
        earlier(BACKENDS[backend])
    model = model_cls(BACKENDS[backend]).to(dtype)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    inputs = make_inputs(dtype) if make_inputs else None
    history = []
    for epoch in range(default_epochs if epochs is None else epochs):
        optimizer.zero_grad()
        if inputs is None:
            loss, predicted = _epoch_step(model, criterion)
        else:
            loss, predicted = _epoch_sequence(model, criterion, inputs)
        loss.backward()
        optimizer.step()
        string = "".join(IDX2CHAR[i] for i in predicted)
        history.append((loss.item(), string))
        if log is not None:
            log(f"predicted string: {string}, epoch: {epoch + 1}, loss: {loss.item():1.3f}")
    return model, history


@torch.no_grad()
def predict(model, variant):
    """The string the trained model predicts for "hihell"."""
    if variant == "step":
        _, predicted = _epoch_step(model, nn.CrossEntropyLoss())
    else:
        inputs = VARIANTS[variant][2](_dtype(model))
        _, predicted = _epoch_sequence(model, nn.CrossEntropyLoss(), inputs)
    return "".join(IDX2CHAR[i] for i in predicted)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m experiments.hihell",
        description='The course example: an RNN learns "hihell" -> "ihello".',
    )
    p.add_argument("--backend", choices=tuple(BACKENDS), default="fastrnn")
    p.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    p.add_argument("--quiet", action="store_true", help="print only the results")
    args = p.parse_args(argv)
    failed = []
    for variant in args.variants:
        print(f"=== {variant} ({args.backend})")
        model, history = train_variant(variant, args.backend, log=None if args.quiet else print)
        result = predict(model, variant)
        loss = history[-1][0]
        print(f"{variant}: after {len(history)} epochs, loss {loss:.3f}, predicts {result!r}")
        if result != "ihello":
            failed.append(variant)
    if failed:
        print(f"not learned: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("Learning finished!")
    return 0


if __name__ == "__main__":
    sys.exit(main())
