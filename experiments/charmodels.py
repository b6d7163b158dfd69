"""Next-character models of the comparison, and what each one costs.

    rnn, lstm, gru   embedding -> recurrent layers -> linear over the vocabulary
                     (head "fc": a hidden Linear(H, H) + ReLU before it);
                     backend "fastrnn" builds fastrnn.RNN/LSTM/GRU, "torch"
                     torch.nn.RNN/LSTM/GRU, with the same weights for the same seed
    cnn              embedding -> causal dilated 1-D convolutions -> linear
    attention        embedding + learned positions -> causal self-attention
                     blocks -> linear

Every model maps ids [batch, seq_len] to logits [batch, seq_len, vocab]: it
predicts the next character at every position (char-rnn's objective), and
starts every window from a zero state. CharRNN(ids, last=True) gives only the
last position's logits [batch, vocab] (the course's many-to-one model: the
head reads the last output alone).

FLOPs (`flops_per_sequence`): the multiply-adds of the matrix products, two
FLOPs each, of one training sequence, forward and backward. Elementwise work
(gates, activations, softmax, layer norms, the loss) is left out: it is O(width)
per position against the products' O(width^2). Backward costs two products per
forward one (gradient of the input and of the weight), so a layer costs 3x its
forward, less what is never computed: the gradient of a zero initial state.
These are the counts torch.utils.flop_counter.FlopCounterMode reports for the
same training step (the tests check that).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

import fastrnn

__all__ = [
    "CELLS",
    "RECURRENT",
    "BACKENDS",
    "HEADS",
    "CharRNN",
    "CausalConvNet",
    "CausalAttention",
    "build_model",
    "check_backend",
    "count_params",
    "model_bytes",
    "conv_layers",
]

# cell -> (torch.nn class, fastrnn class, gates G: weight rows per hidden unit)
RECURRENT = {
    "rnn": (nn.RNN, fastrnn.RNN, 1),  # tanh
    "lstm": (nn.LSTM, fastrnn.LSTM, 4),
    "gru": (nn.GRU, fastrnn.GRU, 3),
}
CELLS = ("rnn", "lstm", "gru", "cnn", "attention")
HEADS = ("plain", "fc")  # CharRNN's head
BACKENDS = ("fastrnn", "torch")


class CharRNN(nn.Module):
    """head "plain": the recurrent output -> linear over the vocabulary;
    "fc": a hidden fully connected layer first, Linear(H, H) + ReLU (the
    assignment's "fully connected network" hyperparameter)."""

    def __init__(
        self, cell, backend, vocab_size, embed_size, hidden_size, num_layers, head="plain"
    ):
        super().__init__()
        torch_cls, fast_cls, self.gates = RECURRENT[cell]
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose from {', '.join(HEADS)}")
        cls = fast_cls if backend == "fastrnn" else torch_cls
        self.cell, self.backend = cell, backend
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = cls(embed_size, hidden_size, num_layers=num_layers, batch_first=True)
        # built before the output layer, and only for "fc": a plain model
        # draws the same weights from the seed as before the option existed
        self.fc = nn.Linear(hidden_size, hidden_size) if head == "fc" else None
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, last=False):
        output, _ = self.rnn(self.embed(ids))
        output = output[:, -1] if last else output
        if self.fc is not None:
            output = F.relu(self.fc(output))
        return self.head(output)

    def flops_per_sequence(self, seq_len, last=False):
        """last: the head at the last position only (forward(ids, last=True))."""
        G, H, L = self.gates, self.rnn.hidden_size, self.rnn.num_layers
        E, V = self.embed.embedding_dim, self.embed.num_embeddings
        recurrent = 2 * G * H * (E + H) + (L - 1) * 2 * G * H * (H + H)
        head = 2 * H * V + (2 * H * H if self.fc is not None else 0)
        forward = seq_len * recurrent + (1 if last else seq_len) * head
        # dh0 of each layer: the initial state is zero and needs no gradient
        return 3 * forward - L * 2 * G * H * H


def conv_layers(seq_len, kernel_size=2):
    """WaveNet's rule: the fewest layers with dilations 1, 2, 4, ... whose
    receptive field, 1 + (k - 1)(2^L - 1), covers the whole window."""
    layers = 1
    while 1 + (kernel_size - 1) * (2**layers - 1) < seq_len:
        layers += 1
    return layers


class CausalConvNet(nn.Module):
    """Each position sees only itself and the positions before it: every
    convolution is padded on the left only. Residual connections from the
    second layer on, where input and output widths agree. Its depth follows
    seq_len (conv_layers), not --num-layers: a convolution stack sees only
    its receptive field, and one shorter than the window would handicap it."""

    def __init__(self, vocab_size, embed_size, hidden_size, seq_len, kernel_size=2):
        super().__init__()
        self.kernel_size = kernel_size
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.convs = nn.ModuleList(
            nn.Conv1d(
                embed_size if i == 0 else hidden_size, hidden_size, kernel_size, dilation=2**i
            )
            for i in range(conv_layers(seq_len, kernel_size))
        )
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)  # [B, E, T]
        for i, conv in enumerate(self.convs):
            y = F.relu(conv(F.pad(x, ((self.kernel_size - 1) * conv.dilation[0], 0))))
            x = y if i == 0 else x + y
        return self.head(x.transpose(1, 2))

    def flops_per_sequence(self, seq_len):
        k, V = self.kernel_size, self.head.out_features
        forward = seq_len * (
            sum(2 * k * c.in_channels * c.out_channels for c in self.convs)
            + 2 * self.head.in_features * V
        )
        return 3 * forward


class Block(nn.Module):
    """Pre-LayerNorm transformer block: causal multi-head self-attention,
    then an MLP of 4x the width, each added to the residual stream."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.heads, D // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, T, D/heads]
        # Written out rather than scaled_dot_product_attention, whose CPU
        # kernel FlopCounterMode cannot see: the FLOP test counts these.
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // self.heads)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        attn = scores.masked_fill(future, float("-inf")).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(self.norm2(x))


class CausalAttention(nn.Module):
    """A small GPT: the residual width is hidden_size (the embedding maps
    straight to it), --num-layers blocks, 4 heads where the width allows."""

    def __init__(self, vocab_size, hidden_size, num_layers, seq_len):
        super().__init__()
        heads = 4 if hidden_size % 4 == 0 else 1
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.pos = nn.Parameter(torch.zeros(seq_len, hidden_size))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(hidden_size, heads) for _ in range(num_layers))
        self.norm = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids):
        x = self.embed(ids) + self.pos[: ids.size(1)]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def flops_per_sequence(self, seq_len):
        D, T, L, V = self.head.in_features, seq_len, len(self.blocks), self.head.out_features
        # per block: qkv 3D^2, out 1D^2, MLP 8D^2 weights (x2 FLOPs each), and
        # the full T x T scores and their use on values (the mask costs no less)
        per_block = T * 2 * 12 * D * D + 2 * 2 * T * T * D
        return 3 * (L * per_block + T * 2 * D * V)


def build_model(
    cell,
    backend,
    vocab_size,
    seq_len,
    embed_size=32,
    hidden_size=128,
    num_layers=1,
    seed=0,
    dtype=torch.float32,
    head="plain",
):
    """The model of `cell`, initialised from `seed` alone: the same seed gives
    the same weights under either backend. cnn and attention are torch ops
    under any backend (fastrnn has no kernel for them); `head` (HEADS) is
    the recurrent models' only."""
    torch.manual_seed(seed)
    if cell in RECURRENT:
        model = CharRNN(cell, backend, vocab_size, embed_size, hidden_size, num_layers, head)
    elif cell == "cnn":
        model = CausalConvNet(vocab_size, embed_size, hidden_size, seq_len)
    elif cell == "attention":
        model = CausalAttention(vocab_size, hidden_size, num_layers, seq_len)
    else:
        raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
    return model.to(dtype)


def check_backend(model, cell, backend):
    """Raise unless a recurrent model of backend fastrnn runs fastrnn's class:
    no quiet fallback to torch.nn, or a comparison compares nothing. Not an
    assert: python -O would drop it."""
    if cell in RECURRENT and backend == "fastrnn" and type(model.rnn) is not RECURRENT[cell][1]:
        raise RuntimeError(
            f"backend fastrnn built {type(model.rnn).__module__}."
            f"{type(model.rnn).__qualname__} for {cell}, not fastrnn's "
            f"{RECURRENT[cell][1].__qualname__}"
        )


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def model_bytes(model):
    """Bytes of the state_dict's tensors: what a checkpoint holds, without
    the container's own overhead."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())
