"""MAP models: LSTM, MLP-Mixer, ResNet and a sliding-window-attention transformer.

Every model maps a (batch, 10 history steps, 10 address tokens) float tensor to (batch, 256)
logits of the future-delta bitmap. Forward passes use plain modules (nn.Linear, nn.Conv2d,
nn.LSTM, LayerNorm/BatchNorm) and torch ops without data-dependent control flow, so they trace with
torch.fx and quantize with Brevitas.

Presets (``build(arch, preset)``):

* ``student``: ~9-12k parameters, sized to PaCKD's students (LSTM 11,904, Mixer 10,206, ResNet
  9,324; PaCKD, HPEC'23). The LSTM student is theirs exactly: the 100 tokens flattened into one
  step, LSTM(100, 16) + Linear(16, 256) = 11,904 parameters (``build("lstm", "student", steps=10,
  hidden=28)`` is the 10-step alternative of the same size, which stays on the frequency plateau).
* ``cpu``: teachers of ~0.15-0.45M parameters that train on a laptop CPU (the default here).
* ``paper``: teachers of ~5M parameters, as in the paper.
"""

from __future__ import annotations

import math
import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .map_data import HISTORY, LABELS, TOKENS
from .specs import ARCHS, PRESETS

#: PaCKD's published student sizes (parameters)
PACKD_STUDENT_PARAMS = {"lstm": 11_904, "mixer": 10_206, "resnet": 9_324}


class ZooError(ValueError):
    """Unknown architecture / preset or an unusable checkpoint."""


class LSTMNet(nn.Module):
    """LSTM (batch_first) whose last step's output feeds a linear head.

    ``steps=1`` flattens the (history, tokens) input into one step of ``history · tokens`` inputs
    (PaCKD's student); ``steps=history`` runs one step per history entry."""

    def __init__(self, hidden: int = 16, layers: int = 1, steps: int = 1, history: int = HISTORY,
                 tokens: int = TOKENS, out: int = LABELS):
        super().__init__()
        if steps not in (1, history):
            raise ZooError(f"LSTM steps {steps}: use 1 (flattened, as PaCKD) or {history} (one per access)")
        self.steps = steps
        self.lstm = nn.LSTM(history * tokens // steps, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x.reshape(x.shape[0], self.steps, -1))
        return self.head(y[:, -1])


class MixerBlock(nn.Module):
    """Token-mixing MLP across history steps, then channel-mixing MLP, each pre-LN residual."""

    def __init__(self, tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.tok1 = nn.Linear(tokens, token_hidden)
        self.tok2 = nn.Linear(token_hidden, tokens)
        self.norm2 = nn.LayerNorm(dim)
        self.ch1 = nn.Linear(dim, channel_hidden)
        self.ch2 = nn.Linear(channel_hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        y = self.norm1(x).transpose(1, 2)
        x = x + self.tok2(self.act(self.tok1(y))).transpose(1, 2)
        return x + self.ch2(self.act(self.ch1(self.norm2(x))))


class MixerNet(nn.Module):
    """MLP-Mixer whose tokens are the history steps (each step's 10 address tokens embedded)."""

    def __init__(self, dim: int = 32, depth: int = 1, token_hidden: int = 16,
                 channel_hidden: int = 16, history: int = HISTORY, tokens: int = TOKENS,
                 out: int = LABELS):
        super().__init__()
        self.embed = nn.Linear(tokens, dim)
        self.blocks = nn.Sequential(*[MixerBlock(history, dim, token_hidden, channel_hidden)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.blocks(self.embed(x)))
        return self.head(h.mean(dim=1))


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 reduce, 3x3, 1x1 expand (BatchNorm + ReLU), projection shortcut."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (nn.Identity() if cin == cout and stride == 1 else
                      nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                    nn.BatchNorm2d(cout)))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class ResNetNet(nn.Module):
    """1-channel ResNet over the 10x10 token image: 3x3 stem, bottleneck stages, global pool.

    ``stages``: tuples ``(mid channels, out channels, blocks[, stride of the first block])``."""

    def __init__(self, stem: int = 8, stages: tuple[tuple[int, ...], ...] = ((4, 32, 1),),
                 out: int = LABELS):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, stem, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(stem), nn.ReLU()]
        c = stem
        for stage in stages:
            mid, cout, blocks = stage[:3]
            stride = stage[3] if len(stage) > 3 else 1
            for b in range(blocks):
                layers.append(Bottleneck(c, mid, cout, stride if b == 0 else 1))
                c = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.features(x.unsqueeze(1)))
        return self.head(torch.flatten(h, 1))


def window_mask(history: int, window: int) -> torch.Tensor:
    """Boolean (history, history) mask, True where query i must NOT see key j, i.e. outside
    i - window < j <= i."""
    i = torch.arange(history)[:, None]
    j = torch.arange(history)[None, :]
    return ~((j <= i) & (j > i - window))


class SlidingWindowAttention(nn.Module):
    """Multi-head causal attention restricted to the last ``window`` positions (incl. itself)."""

    def __init__(self, dim: int, heads: int, window: int, history: int):
        super().__init__()
        if dim % heads:
            raise ZooError(f"model dim {dim} must be divisible by heads {heads}")
        if not 1 <= window <= history:
            raise ZooError(f"window {window} must be in 1..history ({history})")
        self.heads, self.dh, self.window = heads, dim // heads, window
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        # boolean, applied with masked_fill right before the softmax: an additive -inf mask would
        # pass through a PTQ activation quantizer (graph quantization quantizes both inputs of
        # an add) and turn into NaN
        self.register_buffer("blocked", window_mask(history, window), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        k = self.k(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        v = self.v(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.dh))
        s = s.masked_fill(self.blocked, float("-inf"))
        a = torch.softmax(s, dim=-1)
        y = torch.matmul(a, v).transpose(1, 2).reshape(b, t, d)
        return self.o(y)


class SWABlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, history: int, ff: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SlidingWindowAttention(dim, heads, window, history)
        self.norm2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ff)
        self.ff2 = nn.Linear(ff, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ff2(self.act(self.ff1(self.norm2(x))))


class SWANet(nn.Module):
    """Transformer over the history steps with sliding-window attention; the current (last)
    position's output feeds the head."""

    def __init__(self, dim: int = 24, heads: int = 2, window: int = 4, history: int = HISTORY,
                 depth: int = 1, ff: int = 48, tokens: int = TOKENS, out: int = LABELS):
        super().__init__()
        self.embed = nn.Linear(tokens, dim)
        self.pos = nn.Parameter(torch.zeros(1, history, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[SWABlock(dim, heads, window, history, ff) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.blocks(self.embed(x) + self.pos))
        return self.head(h[:, -1])


_CLASSES = {"lstm": LSTMNet, "mixer": MixerNet, "resnet": ResNetNet, "swa": SWANet}

#: constructor keyword arguments of every (arch, preset)
PRESET_KWARGS: dict[str, dict[str, dict]] = {
    "lstm": {"student": dict(hidden=16, layers=1, steps=1),
             "cpu": dict(hidden=256, layers=1, steps=1),
             "paper": dict(hidden=640, layers=2, steps=1)},
    "mixer": {"student": dict(dim=32, depth=1, token_hidden=16, channel_hidden=16),
              "cpu": dict(dim=128, depth=4, token_hidden=64, channel_hidden=256),
              "paper": dict(dim=512, depth=5, token_hidden=128, channel_hidden=1024)},
    "resnet": {"student": dict(stem=8, stages=((4, 32, 1),)),
               "cpu": dict(stem=16, stages=((16, 64, 1), (32, 128, 1, 2), (64, 256, 1, 2))),
               "paper": dict(stem=64, stages=((64, 256, 3), (128, 512, 4, 2), (256, 1024, 3, 2)))},
    "swa": {"student": dict(dim=24, heads=2, window=4, depth=1, ff=48),
            "cpu": dict(dim=128, heads=4, window=4, depth=2, ff=512),
            "paper": dict(dim=384, heads=8, window=4, depth=3, ff=1536)},
}


def build(arch: str, preset: str = "cpu", **overrides) -> nn.Module:
    """Construct a MAP model: ``arch`` in lstm, mixer, resnet, swa; ``preset`` in student, cpu,
    paper. ``overrides`` replace preset keyword arguments (e.g. ``window=3`` for swa)."""
    if arch not in _CLASSES:
        raise ZooError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    if preset not in PRESETS:
        raise ZooError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    kwargs = {**PRESET_KWARGS[arch][preset], **overrides}
    try:
        return _CLASSES[arch](**kwargs)
    except TypeError as e:
        raise ZooError(f"bad keyword for {arch}: {e}") from None


def preset_kwargs(arch: str, preset: str, **overrides) -> dict:
    """The constructor kwargs :func:`build` uses (JSON/weights_only friendly: tuples -> lists)."""
    kw = {**PRESET_KWARGS[arch][preset], **overrides}
    return _listify(kw)


def _listify(v):
    if isinstance(v, dict):
        return {k: _listify(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_listify(x) for x in v]
    return v


def _tupleify(v):
    if isinstance(v, dict):
        return {k: _tupleify(x) for k, x in v.items()}
    if isinstance(v, list):
        return tuple(_tupleify(x) for x in v)
    return v


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict) -> None:
    """Save ``{"state_dict", "meta"}``; ``meta`` must hold ``arch``, ``preset`` and ``kwargs``
    (plain Python types) so that :func:`load_checkpoint` can rebuild the model."""
    for k in ("arch", "preset", "kwargs"):
        if k not in meta:
            raise ZooError(f"checkpoint meta lacks {k!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": _listify(meta)}, path)


def _sniff(path: Path) -> str:
    """A few words on what ``path`` holds, for a refusal message."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return "unreadable"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive that is not a complete torch checkpoint (truncated or foreign?)"
    if head[:1] == b"\x80":
        return "a pickle stream that is not a torch checkpoint of tensors and plain values"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "unrecognised binary data"


#: what a refused checkpoint's message asks for, and the command that writes one
_MAP_CHECKPOINT = ("paretofab", "give a student.pt written by `paretofab distill` or `paretofab prune`",
                   "paretofab distill -o DIR")


def load_checkpoint(path: str | Path, classes: dict[str, type] | None = None,
                    wanted: tuple[str, str, str] = _MAP_CHECKPOINT) -> nn.Module:
    """Rebuild a model saved by :func:`save_checkpoint` (``weights_only=True``), in eval mode.

    The checkpoint's ``meta`` dict is attached as ``model.meta``. Anything that is not such a
    checkpoint (a foreign pickle, random bytes, a text file, a torch file without our ``meta``)
    raises :class:`ZooError` ``"PATH: not a paretofab checkpoint (…)"``; the file is only ever
    read with torch's weights-only unpickler, so a pickle payload is never executed.
    ``classes``: the architectures accepted (``arch`` → class built from ``meta["kwargs"]``;
    default the MAP models); ``wanted``: (kind named in a refusal, what to give instead, the
    command that writes one).
    """
    classes = _CLASSES if classes is None else classes
    kind, give, command = wanted
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found: run `{command}` first")

    def refuse(why: str) -> ZooError:
        return ZooError(f"{path}: not a {kind} checkpoint ({why}); {give}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # a folder, no permission …: the CLI names the path
    except pickle.UnpicklingError as e:
        # torch's message advises weights_only=False: never repeat that advice
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        why = (f"it pickles {m.group(1)}, which is never unpickled here" if m else _sniff(path))
        raise refuse(why) from None
    except Exception:  # KeyError, EOFError, RuntimeError (corrupt zip) …
        raise refuse(_sniff(path)) from None
    if not isinstance(ck, dict) or "state_dict" not in ck or "meta" not in ck:
        raise refuse("a torch file without the state_dict and meta paretofab writes")
    meta, state = ck["meta"], ck["state_dict"]
    if not isinstance(meta, dict) or not isinstance(state, dict) or "kwargs" not in meta:
        raise refuse("its meta lacks arch, preset or kwargs")
    if meta.get("arch") not in classes:
        raise refuse(f"unknown architecture {meta.get('arch')!r}")
    try:
        model = classes[meta["arch"]](**_tupleify(meta["kwargs"]))
        model.load_state_dict(state)
    except (TypeError, RuntimeError, ValueError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise refuse(f"its weights do not fit a {meta['arch']} model: {first[:160]}") from None
    model.eval()
    model.meta = meta
    return model
