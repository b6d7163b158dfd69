"""Bad arguments get a clear Python exception, never a crash: the modules
raise what torch.nn raises (type and message), and the ops name the offending
argument. tests/test_torch_errors.py goes through torch.nn's checks one by
one."""

import pytest
import torch

import fastrnn

from helpers import CELLS, make_pair

CELL_IDS = list(CELLS)
L, B, I, H = 2, 3, 4, 6  # num_layers, batch, input_size, hidden_size of the modules here


def _raises_like_torch(ref, ours, call, exc, match=None):
    """call(module) raises `exc` (matching `match`) for both modules, the
    same type with the same message."""
    with pytest.raises(exc, match=match) as theirs:
        call(ref)
    with pytest.raises(exc, match=match) as got:
        call(ours)
    assert type(got.value) is type(theirs.value)
    assert str(got.value) == str(theirs.value)


def _states(cell, shape, c_shape=None, dtype=torch.float32):
    h = torch.randn(shape, dtype=dtype)
    if cell == "lstm":
        return h, torch.randn(c_shape or shape, dtype=dtype)
    return h


def _pair(cell):
    return make_pair(cell, I, H, dtype=torch.float32, num_layers=L)


# --- the modules ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(I,), (2, 5, B, I)], ids=["1d", "4d"])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_wrong_input_dims(cell, shape):
    ref, ours = _pair(cell)
    x = torch.randn(shape)
    _raises_like_torch(
        ref, ours, lambda m: m(x), ValueError, rf"Expected input to be 2D or 3D, got {len(shape)}D"
    )


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_wrong_feature_size(cell, batched):
    ref, ours = _pair(cell)
    x = torch.randn((5, B, I + 3) if batched else (5, I + 3))
    _raises_like_torch(
        ref,
        ours,
        lambda m: m(x),
        RuntimeError,
        rf"input.size\(-1\) must be equal to input_size. Expected {I}, got {I + 3}",
    )


@pytest.mark.parametrize(
    "shape", [(L, B + 1, H), (L + 1, B, H), (L, B, H - 1)], ids=["batch", "layers", "hidden"]
)
@pytest.mark.parametrize("cell", CELL_IDS)
def test_hx_wrong_shape(cell, shape):
    ref, ours = _pair(cell)
    hx = _states(cell, shape, c_shape=(L, B, H))
    x = torch.randn(5, B, I)
    size = rf"\({L}, {B}, {H}\), got \[{', '.join(map(str, shape))}\]"
    _raises_like_torch(
        ref, ours, lambda m: m(x, hx), RuntimeError, rf"Expected hidden(\[0\])? size {size}"
    )


@pytest.mark.parametrize("shape", [(B, H), (L, H - 1)], ids=["batch", "hidden"])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_unbatched_hx_wrong_shape(cell, shape):
    ref, ours = _pair(cell)
    x = torch.randn(5, I)
    hx = _states(cell, shape, c_shape=(L, H))
    _raises_like_torch(
        ref,
        ours,
        lambda m: m(x, hx),
        RuntimeError,
        rf"Expected hidden(\[0\])? size \({L}, 1, {H}\)",
    )


@pytest.mark.parametrize("cell", CELL_IDS)
def test_hx_2d_with_3d_input(cell):
    ref, ours = _pair(cell)
    x = torch.randn(5, B, I)
    hx = _states(cell, (L, H))
    _raises_like_torch(
        ref,
        ours,
        lambda m: m(x, hx),
        RuntimeError,
        r"For batched 3-D input, hx (and cx )?should also be 3-D but got \(?2-D",
    )


@pytest.mark.parametrize("cell", CELL_IDS)
def test_hx_3d_with_2d_input(cell):
    ref, ours = _pair(cell)
    x = torch.randn(5, I)
    hx = _states(cell, (L, B, H))
    _raises_like_torch(
        ref,
        ours,
        lambda m: m(x, hx),
        RuntimeError,
        r"For unbatched 2-D input, hx (and cx )?should also be 2-D but got \(?3-D",
    )


@pytest.mark.parametrize(
    "c_shape", [(L, B + 1, H), (L + 1, B, H), (L, B, H + 1)], ids=["batch", "layers", "hidden"]
)
def test_lstm_c0_wrong_shape(c_shape):
    ref, ours = _pair("lstm")
    x = torch.randn(5, B, I)
    hx = _states("lstm", (L, B, H), c_shape=c_shape)
    _raises_like_torch(
        ref, ours, lambda m: m(x, hx), RuntimeError, rf"Expected hidden\[1\] size \({L}, {B}, {H}\)"
    )


@pytest.mark.parametrize("cell,which", [(c, "h0") for c in CELL_IDS] + [("lstm", "c0")])
def test_state_dtype_mismatch_like_torch(cell, which):
    """torch.nn has no check of its own here: the error is its kernel's (the
    first matrix product, or oneDNN's LSTM), and fastrnn raises the same."""
    ref, ours = _pair(cell)
    x = torch.randn(5, B, I)
    hx = _states(cell, (L, B, H))
    if cell == "lstm":
        hx = (hx[0].double(), hx[1]) if which == "h0" else (hx[0], hx[1].double())
    else:
        hx = hx.double()
    _raises_like_torch(ref, ours, lambda m: m(x, hx), RuntimeError)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_input_dtype_not_weight_dtype(cell, dtype):
    model_dtype = torch.float64 if dtype == torch.float32 else torch.float32
    ref, ours = (m.to(model_dtype) for m in _pair(cell))
    x = torch.randn(5, B, I, dtype=dtype)
    _raises_like_torch(
        ref,
        ours,
        lambda m: m(x),
        ValueError,
        rf"input dtype \({dtype}\) does not match weight dtype",
    )


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex64])
@pytest.mark.parametrize("cell", CELL_IDS)
def test_unsupported_input_dtype(cell, dtype):
    """The modules refuse it as torch.nn does (it is not the weights' dtype);
    ops.layer with a TypeError naming the input."""
    ref, ours = _pair(cell)
    x = torch.ones(5, B, I, dtype=dtype)
    _raises_like_torch(
        ref,
        ours,
        lambda m: m(x),
        ValueError,
        rf"input dtype \({dtype}\) does not match weight dtype",
    )
    op = {"lstm": "lstm", "gru": "gru"}.get(cell, "rnn")
    with pytest.raises(TypeError, match=rf"fastrnn: input: expected dtype .* got {dtype}"):
        fastrnn.ops.layer(
            op,
            x,
            torch.zeros(B, H),
            torch.zeros(B, H) if op == "lstm" else None,
            **ours._layer_weights(0),
        )


@pytest.mark.parametrize(
    "proj_size", [3, H, H + 1, -1], ids=["valid", "eq_hidden", "gt_hidden", "negative"]
)
@pytest.mark.parametrize("cell", CELL_IDS)
def test_proj_size_accepted_or_refused_like_torch(cell, proj_size):
    """proj_size: LSTM takes 0 < proj_size < hidden_size, RNN and GRU none;
    torch.nn's exceptions and messages otherwise."""
    torch_cls, fast_cls, extra = CELLS[cell]
    if cell == "lstm" and 0 < proj_size < H:
        theirs = torch_cls(I, H, **extra, proj_size=proj_size)
        ours = fast_cls(I, H, **extra, proj_size=proj_size)
        assert ours.proj_size == theirs.proj_size == proj_size
        assert ours.weight_hr_l0.shape == theirs.weight_hr_l0.shape == (proj_size, H)
        return
    with pytest.raises(ValueError, match="proj_size") as theirs:
        torch_cls(I, H, **extra, proj_size=proj_size)
    with pytest.raises(ValueError) as got:
        fast_cls(I, H, **extra, proj_size=proj_size)
    assert str(got.value) == str(theirs.value)


@pytest.mark.parametrize("which", ["h0", "c0"])
def test_lstm_proj_state_wrong_size_like_torch(which):
    """With proj_size, h0 has proj_size features and c0 hidden_size: either
    one given the other's size is torch.nn's error."""
    P = 2
    ref, ours = make_pair("lstm", I, H, dtype=torch.float32, num_layers=L, proj_size=P)
    x = torch.randn(5, B, I)
    hx = (
        (torch.randn(L, B, H), torch.randn(L, B, H))
        if which == "h0"
        else (torch.randn(L, B, P), torch.randn(L, B, P))
    )
    index = 0 if which == "h0" else 1
    size = P if which == "h0" else H
    _raises_like_torch(
        ref,
        ours,
        lambda m: m(x, hx),
        RuntimeError,
        rf"Expected hidden\[{index}\] size \({L}, {B}, {size}\)",
    )


def test_unknown_nonlinearity_like_torch():
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        torch.nn.RNN(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        fastrnn.RNN(I, H, nonlinearity="sigmoid")


# --- the ops -------------------------------------------------------------------------------

T_OP = 4


def _op_args(**override):
    """Valid lstm_forward arguments (packed, T_OP steps), with overrides."""
    bs = torch.tensor([3, 3, 2, 1])
    args = dict(
        input=torch.randn(int(bs.sum()), I),
        hx=torch.randn(B, H),
        cx=torch.randn(B, H),
        w_ih=torch.randn(4 * H, I),
        w_hh=torch.randn(4 * H, H),
        b_ih=torch.randn(4 * H),
        b_hh=torch.randn(4 * H),
        w_hr=None,
        batch_sizes=bs,
        reverse=False,
        training=True,
    )
    args.update(override)
    return args


def _lstm_forward(args):
    return torch.ops.fastrnn.lstm_forward(*args.values())


BAD_FORWARD = {
    "w_ih shape": (dict(w_ih=torch.randn(4 * H + 1, I)), r"w_ih: expected shape \[24, 4\]"),
    "w_ih dims": (dict(w_ih=torch.randn(4 * H * I)), "w_ih: expected 2 dimensions"),
    "w_hh gates": (dict(w_hh=torch.randn(3 * H, H)), r"w_hh: expected shape \[24, 6\]"),
    "b_ih shape": (dict(b_ih=torch.randn(H)), r"b_ih: expected shape \[24\]"),
    "b_hh dtype": (dict(b_hh=torch.randn(4 * H, dtype=torch.float64)), "b_hh: expected dtype"),
    "hx batch": (dict(hx=torch.randn(B + 1, H)), "batch_sizes"),
    "hx hidden": (dict(hx=torch.randn(B, H + 1)), r"hx: expected shape \[3, 6\]"),
    "hx dtype": (dict(hx=torch.randn(B, H, dtype=torch.float64)), "hx: expected dtype"),
    "cx shape": (dict(cx=torch.randn(B, H + 1)), r"cx: expected shape \[3, 6\]"),
    "input dtype": (
        dict(input=torch.ones(9, I, dtype=torch.long)),
        "input: expected dtype float32 or float64",
    ),
    "input features": (dict(input=torch.randn(9, I + 1)), "input: expected input_size 4"),
    "input dims with batch_sizes": (dict(input=torch.randn(3, 3, I)), "input: expected 2 dim"),
    "batch_sizes increasing": (
        dict(batch_sizes=torch.tensor([3, 2, 3, 1])),
        r"batch_sizes\[2\] = 3 > batch_sizes\[1\] = 2: expected non-increasing",
    ),
    # zeros are valid (steps without sequences, as torch.nn allows): test_robustness.py
    "batch_sizes negative": (
        dict(batch_sizes=torch.tensor([3, 3, 3, -1])),
        r"batch_sizes\[3\] = -1: expected non-negative",
    ),
    "batch_sizes sum": (
        dict(batch_sizes=torch.tensor([3, 3, 1, 1])),
        "batch_sizes sum to 8 but input has 9 rows",
    ),
    "batch_sizes dtype": (
        dict(batch_sizes=torch.tensor([3, 3, 2, 1], dtype=torch.int32)),
        "batch_sizes: expected a 1-D int64 CPU tensor",
    ),
    "batch_sizes dims": (
        dict(batch_sizes=torch.tensor([[3, 3], [2, 1]])),
        "batch_sizes: expected a 1-D int64 CPU tensor",
    ),
    "batch_sizes empty": (
        dict(batch_sizes=torch.zeros(0, dtype=torch.long), input=torch.randn(0, I)),
        "Expected sequence length to be larger than 0",
    ),
    "padded input dims": (
        dict(batch_sizes=None, input=torch.randn(9, I)),
        "input: expected 3 dimensions",
    ),
    "padded hx batch": (
        dict(batch_sizes=None, input=torch.randn(T_OP, B + 1, I)),
        "hx: expected batch 4",
    ),
}


# with a projection w_hr [P, H]: h has P features, w_hh P columns
P_OP = 2
PROJ = dict(hx=torch.randn(B, P_OP), w_hh=torch.randn(4 * H, P_OP), w_hr=torch.randn(P_OP, H))
BAD_FORWARD.update(
    {
        "w_hr shape": (dict(PROJ, w_hr=torch.randn(P_OP, H + 1)), r"w_hr: expected shape \[2, 6\]"),
        "w_hr transposed": (
            dict(PROJ, w_hr=torch.randn(H, P_OP)),
            r"w_hr: expected shape \[2, 6\]",
        ),
        "w_hr dims": (dict(PROJ, w_hr=torch.randn(P_OP * H)), "w_hr: expected 2 dimensions"),
        "w_hr dtype": (
            dict(PROJ, w_hr=torch.randn(P_OP, H, dtype=torch.float64)),
            "w_hr: expected dtype",
        ),
        "w_hr not smaller": (
            dict(PROJ, hx=torch.randn(B, H), w_hh=torch.randn(4 * H, H), w_hr=torch.randn(H, H)),
            "w_hr: expected 0 < proj_size < hidden_size, got proj_size 6",
        ),
        "w_hh rows with w_hr": (
            dict(PROJ, w_hh=torch.randn(4 * H + 1, P_OP)),
            "w_hh: expected 4 \\* hidden_size rows",
        ),
        "hx hidden with w_hr": (dict(PROJ, hx=torch.randn(B, H)), r"hx: expected shape \[3, 2\]"),
        "cx proj with w_hr": (dict(PROJ, cx=torch.randn(B, P_OP)), r"cx: expected shape \[3, 6\]"),
        "w_ih with w_hr": (
            dict(PROJ, w_ih=torch.randn(4 * P_OP, I)),
            r"w_ih: expected shape \[24, 4\]",
        ),
        "hx proj without w_hr": (dict(hx=torch.randn(B, P_OP)), r"hx: expected shape \[3, 6\]"),
    }
)


def _on(device, args):
    """args with every tensor on `device`, but batch_sizes (a CPU tensor on
    every device, as in torch.nn)."""
    return {
        k: v.to(device) if isinstance(v, torch.Tensor) and k != "batch_sizes" else v
        for k, v in args.items()
    }


# "meta" runs the fake kernel, which must refuse what the real op refuses, in
# the same words
DEVICES = ["cpu", "meta"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("override,match", BAD_FORWARD.values(), ids=BAD_FORWARD.keys())
def test_forward_op_bad_arguments(override, match, device):
    with pytest.raises(RuntimeError, match=match) as info:
        _lstm_forward(_on(device, _op_args(**override)))
    assert "fastrnn.lstm_forward" in str(info.value) or "sequence length" in str(info.value)


@pytest.mark.parametrize("name", ["input", "hx", "cx", "w_ih", "w_hh", "b_ih", "b_hh"])
def test_forward_op_argument_on_another_device(name):
    """One argument on the meta device and the rest on the CPU sends the call
    to the fake kernel, which must refuse it (it returned uninitialised CPU
    tensors), naming the argument."""
    args = _op_args()
    args[name] = args[name].to("meta")
    # the other arguments are checked against the input
    named = "hx: expected device meta" if name == "input" else f"{name}: expected device cpu"
    with pytest.raises(RuntimeError, match=f"fastrnn.lstm_forward: {named}"):
        _lstm_forward(args)


@pytest.mark.parametrize("op", ["rnn", "gru", "lstm"])
def test_fake_kernels_answer_for_meta_tensors(op):
    """All arguments on meta: shapes, dtypes and devices of the real op's results."""
    a = _op_args(batch_sizes=None, input=torch.randn(T_OP, B, I))
    G = {"rnn": 1, "gru": 3, "lstm": 4}[op]
    a.update(
        w_ih=torch.randn(G * H, I),
        w_hh=torch.randn(G * H, H),
        b_ih=torch.randn(G * H),
        b_hh=torch.randn(G * H),
    )
    common = (a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"])

    def run(device):
        x, hx, cx = (a[k].to(device) for k in ("input", "hx", "cx"))
        w = tuple(t.to(device) for t in common)
        if op == "lstm":
            return torch.ops.fastrnn.lstm_forward(x, hx, cx, *w, None, None, False, True)
        if op == "gru":
            return torch.ops.fastrnn.gru_forward(x, hx, *w, None, False, True)
        return torch.ops.fastrnn.rnn_forward(x, hx, *w, None, False, False, True)

    for real, fake in zip(run("cpu"), run("meta")):
        assert fake.device.type == "meta"
        assert (fake.shape, fake.dtype) == (real.shape, real.dtype)


def test_forward_op_wrong_w_hh_columns_names_w_hh():
    with pytest.raises(RuntimeError) as info:
        _lstm_forward(_op_args(w_hh=torch.randn(4 * H, H + 1)))
    assert "w_hh" in str(info.value), str(info.value)


@pytest.mark.parametrize("op", ["rnn", "gru"])
def test_forward_op_wrong_gate_count(op):
    """An rnn op fed LSTM-sized weights (and vice versa) is refused, naming w_hh,
    which defines the hidden size and is checked first."""
    a = _op_args(batch_sizes=None, input=torch.randn(T_OP, B, I))
    common = (a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], None, False)
    with pytest.raises(RuntimeError, match=rf"fastrnn.{op}_forward: w_hh: expected shape"):
        if op == "rnn":
            torch.ops.fastrnn.rnn_forward(a["input"], a["hx"], *common, False, False)
        else:
            torch.ops.fastrnn.gru_forward(a["input"], a["hx"], *common, False)


def _lstm_backward_args(projected=False, **override):
    a = _op_args(**(PROJ if projected else {}))
    output, h_n, c_n, workspace = _lstm_forward(a)
    args = dict(
        grad_output=torch.randn_like(output),
        grad_h_n=torch.randn_like(h_n),
        grad_c_n=torch.randn_like(c_n),
        input=a["input"],
        w_ih=a["w_ih"],
        w_hh=a["w_hh"],
        w_hr=a["w_hr"],
        batch_sizes=a["batch_sizes"],
        reverse=False,
        workspace=workspace,
    )
    args.update(override)
    return args


BAD_BACKWARD = {
    "workspace empty": (
        dict(workspace=torch.empty(0, 9, H)),
        "workspace is empty: the forward ran with training=False",
    ),
    "workspace shape": (
        dict(workspace=torch.randn(5, 9, H)),
        r"workspace: expected shape \[7, 9, 6\]",
    ),
    "grad_output shape": (dict(grad_output=torch.randn(9, H + 1)), "grad_output: expected shape"),
    "grad_output dtype": (
        dict(grad_output=torch.randn(9, H, dtype=torch.float64)),
        "grad_output: expected dtype",
    ),
    "grad_h_n shape": (dict(grad_h_n=torch.randn(B, H + 1)), "grad_h_n: expected shape"),
    "grad_c_n shape": (dict(grad_c_n=torch.randn(B + 1, H)), "grad_c_n: expected shape"),
    "w_ih shape": (dict(w_ih=torch.randn(4 * H, I + 1)), "input: expected input_size 5"),
    "batch_sizes non-monotone": (
        dict(batch_sizes=torch.tensor([3, 2, 3, 1])),
        r"batch_sizes\[2\] = 3 > batch_sizes\[1\] = 2: expected non-increasing",
    ),
    "batch_sizes sum": (
        dict(batch_sizes=torch.tensor([3, 2, 2, 1])),
        "batch_sizes sum to 8 but input has 9 rows",
    ),
}


BAD_BACKWARD["w_hr without a projected forward"] = (
    dict(w_hr=torch.randn(P_OP, H)),
    r"w_hr: expected shape \[6, 6\]",
)
# the same after a forward with the projection PROJ
BAD_BACKWARD_PROJ = {
    "w_hr missing": (dict(w_hr=None), "w_hh: expected shape"),
    "w_hr shape": (dict(w_hr=torch.randn(P_OP + 1, H)), r"w_hr: expected shape \[2, 6\]"),
    "grad_output hidden": (
        dict(grad_output=torch.randn(9, H)),
        r"grad_output: expected shape \[9, 2\]",
    ),
    "grad_h_n hidden": (dict(grad_h_n=torch.randn(B, H)), r"grad_h_n: expected shape \[3, 2\]"),
    "grad_c_n proj": (dict(grad_c_n=torch.randn(B, P_OP)), r"grad_c_n: expected shape \[3, 6\]"),
    "workspace unprojected": (
        dict(workspace=torch.randn(7, 9, H)),
        r"workspace: expected shape \[8, 9, 6\]",
    ),
}


@pytest.mark.parametrize(
    "projected,override,match",
    [(False, *v) for v in BAD_BACKWARD.values()] + [(True, *v) for v in BAD_BACKWARD_PROJ.values()],
    ids=list(BAD_BACKWARD) + [f"projected {k}" for k in BAD_BACKWARD_PROJ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_backward_op_bad_arguments(projected, override, match, device):
    args = _on(device, _lstm_backward_args(projected, **override))
    with pytest.raises(RuntimeError, match=match) as info:
        torch.ops.fastrnn.lstm_backward(*args.values())
    assert "fastrnn.lstm_backward" in str(info.value)


@pytest.mark.parametrize(
    "name", ["grad_output", "grad_h_n", "grad_c_n", "w_ih", "w_hh", "workspace"]
)
def test_backward_op_argument_on_another_device(name):
    args = _lstm_backward_args()
    args[name] = args[name].to("meta")
    with pytest.raises(RuntimeError, match=f"fastrnn.lstm_backward: {name}: expected device"):
        torch.ops.fastrnn.lstm_backward(*args.values())


def test_backward_through_inference_forward_is_refused():
    """A forward run with training=False keeps no workspace; differentiating
    it is an error that says so, not a crash or wrong numbers."""
    a = _op_args(training=False)
    a["w_ih"].requires_grad_(True)
    output = _lstm_forward(a)[0]
    with pytest.raises(RuntimeError, match="workspace is empty"):
        output.sum().backward()


def _module_and_input(cell):
    """A float64 module (fastrnn's, or an LSTMCell for "lstm_cell") and an input."""
    if cell == "lstm_cell":
        return fastrnn.LSTMCell(I, H).double(), torch.randn(B, I, dtype=torch.float64)
    return make_pair(cell, I, H, num_layers=L)[1], torch.randn(5, B, I, dtype=torch.float64)


@pytest.mark.parametrize("grad_mode", [True, False], ids=["training", "no_grad"])
@pytest.mark.parametrize("how", ["forward_ad", "func_jvp"])
@pytest.mark.parametrize("cell", CELL_IDS + ["lstm_cell"])
def test_forward_mode_ad_is_refused(cell, how, grad_mode):
    """Forward-mode AD has no formula in fastrnn: it raises, also where nothing
    requires a gradient (there the tangents were dropped without a word, a
    zero derivative). Reverse mode, double backward included, works: see
    test_double_backward.py."""
    module, x = _module_and_input(cell)
    tangent = torch.randn_like(x)

    def run(x):
        return module(x)[0]

    with (
        torch.set_grad_enabled(grad_mode),
        pytest.raises(NotImplementedError, match="fastrnn: forward-mode AD .* is not supported"),
    ):
        if how == "func_jvp":
            torch.func.jvp(run, (x,), (tangent,))
        else:
            with torch.autograd.forward_ad.dual_level():
                run(torch.autograd.forward_ad.make_dual(x, tangent))


@pytest.mark.parametrize("cell", CELL_IDS + ["lstm_cell"])
def test_torch_func_grad_is_refused(cell):
    """torch.func's reverse-mode transforms (grad, vjp, jacrev) refuse
    fastrnn's autograd.Function (PyTorch's own error: it has no
    setup_context), rather than give a wrong answer. torch.autograd.grad,
    create_graph=True included, is the supported way: see
    test_double_backward.py."""
    module, x = _module_and_input(cell)
    with pytest.raises(RuntimeError, match="functorch transforms"):
        torch.func.grad(lambda x: module(x)[0].pow(2).sum())(x)


@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_meta_parameters_with_cpu_input_raise_like_torch(name, grad):
    """Weights on the meta device and input on the CPU: torch.nn raises; fastrnn
    returned uninitialised memory (its fake kernel answered for real data)."""
    ref, ours = getattr(torch.nn, name)(I, H), getattr(fastrnn, name)(I, H)
    ref.to("meta")
    ours.to("meta")
    x = torch.randn(T_OP, B, I) if "Cell" not in name else torch.randn(B, I)
    with torch.set_grad_enabled(grad):
        with pytest.raises(RuntimeError) as theirs:
            ref(x)
        with pytest.raises(RuntimeError) as got:
            ours(x)
    assert str(got.value) == str(theirs.value)


def test_one_meta_parameter_is_refused():
    ours = fastrnn.LSTM(I, H)
    ours.weight_hh_l0 = torch.nn.Parameter(torch.empty(4 * H, H, device="meta"))
    with pytest.raises(RuntimeError, match="not at the same device"):
        ours(torch.randn(T_OP, B, I))


def _message(call):
    with pytest.raises(RuntimeError) as info:
        call()
    return str(info.value).split("\n")[0]  # without the C++ backtrace, if any


@pytest.mark.parametrize("override", [v[0] for v in BAD_FORWARD.values()], ids=BAD_FORWARD.keys())
def test_fake_forward_refuses_in_the_real_ops_words(override):
    args = _op_args(**override)
    assert _message(lambda: _lstm_forward(_on("meta", args))) == _message(
        lambda: _lstm_forward(_on("cpu", args))
    )


@pytest.mark.parametrize("override", [v[0] for v in BAD_BACKWARD.values()], ids=BAD_BACKWARD.keys())
def test_fake_backward_refuses_in_the_real_ops_words(override):
    args = _lstm_backward_args(**override)

    def run(device):
        return torch.ops.fastrnn.lstm_backward(*_on(device, args).values())

    assert _message(lambda: run("meta")) == _message(lambda: run("cpu"))
