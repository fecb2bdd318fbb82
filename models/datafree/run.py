"""One data-free KD run on digits, what ``paretofab datafree`` executes: train the BatchNorm
teacher on real data, the two real-data students of :data:`REFERENCES` (upper references,
:func:`real_student`: the student trained on the labels alone, cross-entropy, and the real-data KD
student; :func:`models.gtn.train_student` with validation early stopping), the noise-KD student
(no-data floor: KD on uniform noise images), optionally the side information (condensed or
few-shot samples from the training split), then the data-free student of the chosen method
(DeepInversion, DAFL, or the dynamic collection of :mod:`.dynamic`), without and with the side
information (and, for DAFL, with VAE or store-everything rehearsal). :data:`RECIPES` maps the
method names of ``paretofab datafree --method`` to these. The data-free stage gets the split with
its training tensors sealed (:mod:`.guard`): it reads only the teacher, the side information and
the test split (for the reporting curve).

Folder written by :func:`run`::

    teacher.pt                 BNTeacher (models.datafree.teacher.load_teacher)
    student.pt                 the data-free student of the method (with side info when given)
    students/{row}.pt          every student of the run (models.gtn_pool.load_student)
    side.pt                    side-information images and labels (when given)
    synthetic.pt               {"images": (N, 1, 8, 8)} the synthetic images of the final student's
                               method (no labels): data-free PTQ calibration, `sweep --calib synthetic:DIR`
    results.csv                one row per model: see COLUMNS
    metrics.json               accuracy, teacher_accuracy, curve (per epoch / eval point), settings
    run.json                   {"split_seed": S}: the digits split every model trained on (sweep checks it)
    curves.png                 test accuracy along distillation (reporting only; nothing selected)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import pandas as pd
import torch

from ..digits_data import DigitsData
from ..gtn import GTNConfig, accuracy, logits_of, train_student
from ..gtn_pool import DigitsCNN, StudentSpec, save_student
from ..specs import RECIPES, REPLAYS
from .condense import condense, few_shot
from .dafl import DAFLConfig, train_dafl
from .dynamic import DynamicConfig, train_dynamic
from .guard import sealed
from .inversion import InversionConfig, balanced_labels, deep_inversion
from .kd import KDConfig, curve_stats, distill_on_set
from .replay import StoreReplay, VAEReplay
from .teacher import BNTeacher, save_teacher, train_bn_teacher

__all__ = ["METHODS", "SIDES", "USES", "REPLAYS", "RECIPES", "REFERENCES", "real_student", "recipe", "Distilled", "save_synthetic", "Budget", "BUDGETS", "COLUMNS", "parse_uses", "check_uses", "side_info",
           "invert_set", "datafree_student", "run", "markdown_table", "plot_curves"]

METHODS = ("deepinv", "dafl", "dynamic")
SIDES = ("none", "condensed", "fewshot")
#: ways side information enters: initial images of the inversion, class feature matching to the
#: teacher's features of the side samples, side samples mixed into every KD batch (the default:
#: the best measured, bench/datafree.py, quick budget, 3 seeds: condensed 1/class 96.0 %, 10/class
#: 98.3 %, against 95.6 % for DeepInversion alone)
USES = ("init", "feat", "mix")
#: the students trained on the real training split, references of every run: row name -> whether
#: the student distils the teacher's logits (KD) or learns the labels alone (cross-entropy)
REFERENCES = {"ce-real": False, "kd-real": True}
#: side samples per class a run may ask for (the digits training split has about 100 per class)
MAX_PER_CLASS = 50
COLUMNS = ("model", "method", "side", "per_class", "uses", "student", "seed", "accuracy", "best",
           "worst_drop", "memory_bytes", "cpu_seconds")


@dataclass(frozen=True)
class Budget:
    """Everything a run trains, sized.

    Attributes
    ----------
    teacher_epochs : int
        BN teacher epochs (best validation epoch kept).
    real : GTNConfig
        The real-data KD student's training (``student_epochs``, ``patience``, α, T).
    images : int
        Synthetic images for DeepInversion KD (and noise images for the floor).
    batch : int
        Images inverted together (their BN statistics are matched as one batch).
    inversion : InversionConfig
    kd : KDConfig
        Distillation on a fixed synthetic set.
    dafl : DAFLConfig
    condense_iterations : int
        Distribution-matching steps.
    dynamic : DynamicConfig
        The dynamic-collection method (:mod:`.dynamic`).
    """

    teacher_epochs: int
    real: GTNConfig
    images: int
    batch: int
    inversion: InversionConfig
    kd: KDConfig
    dafl: DAFLConfig
    condense_iterations: int
    dynamic: DynamicConfig = DynamicConfig()


BUDGETS = {
    "quick": Budget(teacher_epochs=12, real=GTNConfig(student_epochs=30, patience=8), images=400, batch=100,
                    inversion=InversionConfig(steps=150), kd=KDConfig(epochs=60),
                    dafl=DAFLConfig(iterations=600), condense_iterations=200,
                    dynamic=DynamicConfig(iterations=600)),
    "full": Budget(teacher_epochs=30, real=GTNConfig(), images=1000, batch=100,
                   inversion=InversionConfig(steps=300), kd=KDConfig(epochs=100),
                   dafl=DAFLConfig(iterations=2000), condense_iterations=500,
                   dynamic=DynamicConfig(iterations=2000)),
}


def parse_uses(text: str) -> tuple[str, ...]:
    """``"init,feat,mix"`` -> the uses of side information, in :data:`USES` order."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in USES]
    if bad or not parts:
        raise ValueError(f"--uses {text!r}: name one or more of {','.join(USES)} (e.g. --uses init,feat,mix)")
    return tuple(u for u in USES if u in parts)


def check_uses(method: str, side: str, uses: tuple[str, ...]) -> tuple[str, ...]:
    """The uses that apply: the generators (DAFL, dynamic) take side information only as ``mix``
    (the other uses act on DeepInversion's pixels); ``ValueError`` when none is left."""
    if method in ("dafl", "dynamic") and side != "none":
        uses = tuple(u for u in uses if u == "mix")
        if not uses:
            raise ValueError(f"--method {method} uses side information only by mixing it into KD batches: "
                             "give --uses mix")
    return uses


def recipe(name: str, per_class: int | None = None, condensed: int = 0, fewshot: int = 0,
           replay: str = "none") -> tuple[str, str, int, str]:
    """What ``paretofab datafree`` runs: ``(method, side, per_class, replay)`` of a
    :data:`RECIPES` name refined by its options; ``ValueError`` (one line) on a contradiction.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES`.
    per_class : int, optional
        ``--per-class K``: side samples per class of ``condensed`` / ``fewshot`` (default 1).
    condensed, fewshot : int
        The older spelling ``--condensed K`` / ``--fewshot K``: side information for the methods
        named by their own names (0 = none).
    replay : str
        ``--replay``: rehearsal added to DAFL (:data:`REPLAYS`).
    """
    if name not in RECIPES:
        raise ValueError(f"--method {name!r}: use one of {', '.join(RECIPES)}")
    method, side, rp = RECIPES[name]
    if per_class is not None and not 1 <= per_class <= MAX_PER_CLASS:
        raise ValueError(f"--per-class {per_class}: give 1..{MAX_PER_CLASS} side samples per class")
    if condensed < 0 or fewshot < 0:
        raise ValueError("--condensed and --fewshot count samples per class: use 0 (none), 1, 10, ...")
    if condensed and fewshot:
        raise ValueError("give either --condensed K or --fewshot K (side information of one kind), not both")
    if condensed or fewshot:
        if side != "none" or per_class is not None:
            raise ValueError(f"--method {name} --per-class K is the spelling of side information; drop "
                             f"--condensed / --fewshot (or use --method deepinv with them), not both")
        side, k = ("condensed", condensed) if condensed else ("fewshot", fewshot)
    elif side != "none":
        k = 1 if per_class is None else per_class
    elif per_class is not None:
        raise ValueError(f"--per-class applies to --method condensed or fewshot, not {name}")
    else:
        k = 0
    if k > MAX_PER_CLASS:
        raise ValueError(f"{k} samples per class: the digits training split has about 100 per class; "
                         f"use 1..{MAX_PER_CLASS}")
    if replay != "none":
        if replay not in REPLAYS or rp not in ("none", replay):
            raise ValueError(f"--replay {replay}: use none, vae or store (--method {name} brings {rp} rehearsal)")
        rp = replay
    if rp != "none" and method != "dafl":
        raise ValueError(f"--replay {rp}: rehearsal applies to the DAFL generator; add --method dafl")
    return method, side, k, rp


def real_student(data: DigitsData, spec: StudentSpec, teacher: BNTeacher, budget: Budget, seed: int,
                 kd: bool) -> DigitsCNN:
    """A reference student on the real training split (:func:`models.gtn.train_student`,
    ``budget.real``, early stopping on validation accuracy).

    Parameters
    ----------
    kd : bool
        True: Hinton KD from ``teacher``'s logits on the training images; False: cross-entropy on
        the labels alone (``teacher`` unused). The same ``seed`` gives the same initial weights and
        batch order either way.
    """
    student, _ = train_student(data, spec, logits_of(teacher, data.x_train) if kd else None, budget.real, seed)
    return student


def side_info(x: torch.Tensor, y: torch.Tensor, side: str, per_class: int, iterations: int,
              seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The side information: ``per_class`` condensed (:func:`condense`) or real (:func:`few_shot`)
    images per class of ``(x, y)``; None for ``side="none"``."""
    if side == "none":
        return None
    if side == "condensed":
        return condense(x, y, per_class, iterations, seed)
    if side == "fewshot":
        return few_shot(x, y, per_class, seed)
    raise ValueError(f"side information {side!r}: use one of {', '.join(SIDES)}")


def invert_set(teacher: BNTeacher, budget: Budget, seed: int,
               side: tuple[torch.Tensor, torch.Tensor] | None = None,
               uses: tuple[str, ...] = ()) -> torch.Tensor:
    """``budget.images`` DeepInversion images with balanced labels, ``budget.batch`` at a time
    (batch ``i`` seeded ``seed·1000 + i``); side information used as ``uses`` says (``init``,
    ``feat``; ``mix`` acts in KD, not here)."""
    init_all, targets = None, None
    labels = balanced_labels(budget.images)
    if side is not None and "init" in uses:
        sx, sy = side
        counts = torch.zeros(10, dtype=torch.long)
        init_all = torch.empty(budget.images, 1, 8, 8)
        for i, c in enumerate(labels.tolist()):  # cycle through the side samples of each class
            pool = sx[sy == c]
            init_all[i] = pool[int(counts[c]) % len(pool)]
            counts[c] += 1
    if side is not None and "feat" in uses:
        with torch.no_grad():
            teacher.eval()
            f = teacher.features(side[0])
        targets = {c: f[side[1] == c].mean(0) for c in range(10) if bool((side[1] == c).any())}
    out = []
    for i, lo in enumerate(range(0, budget.images, budget.batch)):
        sl = slice(lo, lo + budget.batch)
        out.append(deep_inversion(teacher, labels[sl], budget.inversion, seed * 1000 + i,
                                  init=None if init_all is None else init_all[sl], feature_targets=targets))
    return torch.cat(out)


class Distilled(NamedTuple):
    """What :func:`datafree_student` returns."""

    student: DigitsCNN
    #: test accuracy along distillation (reporting only)
    curve: list[float]
    #: float32 bytes the method holds to distill
    memory_bytes: int
    #: synthetic images (N, 1, 8, 8) the method made, no side images (data-free PTQ calibration)
    images: torch.Tensor


def datafree_student(teacher: BNTeacher, spec: StudentSpec, method: str, budget: Budget, seed: int,
                     data: DigitsData, side: tuple[torch.Tensor, torch.Tensor] | None = None,
                     uses: tuple[str, ...] = (), replay: str = "none") -> Distilled:
    """A student distilled without the training split.

    Parameters
    ----------
    teacher : BNTeacher
    spec : StudentSpec
    method : str
        ``deepinv`` (fixed inverted set, :func:`invert_set` + :func:`distill_on_set`), ``dafl``
        (:func:`train_dafl`), ``dynamic`` (:func:`train_dynamic`) or ``noise`` (uniform noise
        images: the no-data floor).
    budget : Budget
    seed : int
        Student initial weights (the same for every method), synthesis and batch order.
    data : DigitsData
        Only its test split is read (pass it :func:`sealed`).
    side : (Tensor, Tensor), optional
        Side-information images and labels.
    uses : tuple of str
        Subset of :data:`USES`.
    replay : str
        DAFL only: ``none``, ``vae`` (:class:`VAEReplay`) or ``store`` (:class:`StoreReplay`).

    Returns
    -------
    Distilled
        ``student``; ``curve``; ``memory_bytes``: what the method holds to distill: synthetic
        images (float32), or the generator's parameters (and the replay's VAE or stored images,
        or the dynamic collection's images and teacher logits), plus the side images;
        ``images``: the synthetic set (DeepInversion's or the noise images, ``budget.images``
        drawn from the DAFL generator, the dynamic collection at the end).
    """
    test = (data.x_test, data.y_test)
    mix = side[0] if side is not None and "mix" in uses else None
    side_bytes = 0 if side is None else side[0].numel() * 4
    torch.manual_seed(seed)
    student = DigitsCNN(spec.depth, spec.width)
    if replay not in REPLAYS or (replay != "none" and method != "dafl"):
        raise ValueError(f"--replay {replay!r}: use none, or vae / store with --method dafl")
    if method == "dafl":
        rep = {"none": None, "vae": VAEReplay(seed), "store": StoreReplay()}[replay]
        gen_model, curve = train_dafl(teacher, student, budget.dafl, seed, test=test, mix=mix, replay=rep)
        held = 0 if rep is None else rep.nbytes
        with torch.no_grad():
            x = gen_model(torch.randn(budget.images, gen_model.latent, generator=torch.Generator().manual_seed(seed)))
        return Distilled(student, curve, _nbytes(gen_model) + side_bytes + held, x)
    if method == "dynamic":
        gen_model, coll, curve = train_dynamic(teacher, student, budget.dynamic, seed, test=test, mix=mix)
        return Distilled(student, curve, _nbytes(gen_model) + coll.nbytes + side_bytes, coll.images)
    if method == "deepinv":
        x = invert_set(teacher, budget, seed, side, uses)
    elif method == "noise":
        x = torch.rand((budget.images, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    else:
        raise ValueError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    curve = distill_on_set(student, teacher, x, budget.kd, seed, test=test, mix=mix)
    return Distilled(student, curve, x.numel() * 4 + side_bytes, x)


def save_synthetic(path: Path, images: torch.Tensor, **meta) -> None:
    """Write a synthetic set ``{"images": (N, 1, 8, 8), **meta}`` (plain values; loads with
    ``weights_only=True``): what ``paretofab sweep --calib synthetic:DIR`` reads."""
    torch.save({"images": images.detach().contiguous(), **meta}, path)


def _nbytes(model: torch.nn.Module) -> int:
    """float32 bytes of a model's parameters."""
    return sum(p.numel() for p in model.parameters()) * 4


def run(data: DigitsData, method: str, spec: StudentSpec, budget: Budget, seed: int, out: Path,
        side: str = "none", per_class: int = 0, uses: tuple[str, ...] = ("mix",), replay: str = "none",
        log: Callable[[str], None] = lambda line: None, split_seed: int = 0) -> pd.DataFrame:
    """Teacher, :data:`REFERENCES` (real data without and with KD), noise floor, ``method``
    without side information, and (when ``side`` is not ``none``) ``method`` with ``per_class``
    side samples per class used as ``uses`` says, and (``replay`` not ``none``, DAFL only) DAFL
    with that rehearsal; files as the module docstring lists (``split_seed``: the seed ``data``
    was split with, recorded in run.json).
    Returns the results table (:data:`COLUMNS`)."""
    if method not in METHODS:
        raise ValueError(f"--method {method!r}: use one of {', '.join(METHODS)}")
    if side not in SIDES or (side == "none") != (per_class == 0) or per_class < 0:
        raise ValueError(f"side information {side!r} with {per_class} per class: give none with 0, or "
                         f"condensed/fewshot with >= 1 per class")
    uses = check_uses(method, side, uses)
    if replay not in REPLAYS or (replay != "none" and method != "dafl"):
        raise ValueError(f"--replay {replay!r}: use none, or vae / store with --method dafl")
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps({"split_seed": split_seed, "method": method, "seed": seed}))
    rows, curves = [], {}

    def record(model: str, student: torch.nn.Module, curve: list[float] | None, t0: float, m: str = "",
               sd: str = "none", k: int = 0, u: tuple[str, ...] = (), memory: int = 0) -> None:
        acc = accuracy(student, data.x_test, data.y_test)
        st = curve_stats(curve or [])
        row = {"model": model, "method": m, "side": sd, "per_class": k, "uses": "+".join(u),
               "student": getattr(getattr(student, "spec", None), "name", "teacher"), "seed": seed,
               "accuracy": acc, "best": st["best"], "worst_drop": st["worst_drop"], "memory_bytes": memory,
               "cpu_seconds": time.process_time() - t0}
        rows.append(row)
        if curve:
            curves[model] = curve
        pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(out / "results.csv", index=False)
        log(f"  {model}: test accuracy {acc:.4f} ({row['cpu_seconds']:.0f} s CPU)")

    t0 = time.process_time()
    teacher, tinfo = train_bn_teacher(data, budget.teacher_epochs, seed)
    save_teacher(out / "teacher.pt", teacher, seed=seed, test_accuracy=tinfo["test_accuracy"])
    record("teacher", teacher, None, t0, memory=0)

    for name, kd in REFERENCES.items():
        t0 = time.process_time()
        real = real_student(data, spec, teacher, budget, seed, kd)
        save_student(out / "students" / f"{name}.pt", real, seed=seed, method=name)
        record(name, real, None, t0, m=name, memory=data.x_train.numel() * 4)

    t0 = time.process_time()
    sx = side_info(data.x_train, data.y_train, side, per_class, budget.condense_iterations, seed)
    if sx is not None:
        torch.save({"images": sx[0], "labels": sx[1], "side": side, "per_class": per_class}, out / "side.pt")
    side_seconds = time.process_time() - t0
    blind = sealed(data)  # from here on, the training split is off limits

    variants = [("kd-noise", "noise", None, (), "none"), (method, method, None, (), "none")]
    if replay != "none":
        variants.append((f"{method}+{replay}-replay", method, None, (), replay))
    if sx is not None:
        variants.append((f"{method}+{side}{per_class}", method, sx, uses, replay))
    for name, m, s, u, rp in variants:
        t0 = time.process_time()
        student, curve, memory, images = datafree_student(teacher, spec, m, budget, seed, blind, s, u, rp)
        save_student(out / "students" / f"{name}.pt", student, seed=seed, method=m, side=side if s else "none",
                     per_class=per_class if s else 0, uses=list(u), replay=rp)
        record(name, student, curve, t0 - (side_seconds if s is not None else 0), m=m,
               sd=side if s is not None else "none", k=per_class if s is not None else 0, u=u, memory=memory)
        final = (student, curve, images)
    save_synthetic(out / "synthetic.pt", final[2], method=method, seed=seed)
    save_student(out / "student.pt", final[0], seed=seed, method=method, side=side, per_class=per_class,
                 uses=list(uses if sx is not None else ()), replay=replay)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    (out / "metrics.json").write_text(json.dumps({
        "accuracy": float(df["accuracy"].iloc[-1]), "teacher_accuracy": tinfo["test_accuracy"],
        "curve": final[1], "curves": curves, "method": method, "side": side, "per_class": per_class,
        "uses": list(uses), "replay": replay, "student": spec.name, "seed": seed, "budget": asdict(budget),
        "curve_note": "test accuracy after every KD epoch (deepinv, noise) or every eval_every DAFL / "
                      "dynamic iterations; reporting only, never used for selection"}, indent=2, default=str))
    plot_curves(curves, out / "curves.png", f"digits data-free KD, {spec.name}, seed {seed}")
    return df


def markdown_table(df: pd.DataFrame) -> str:
    """Model, test accuracy (%), worst drop along the curve (points), memory held (KiB)."""
    lines = ["| model | accuracy % | worst drop (pts) | memory (KiB) |", "|---|---|---|---|"]
    for r in df.itertuples():
        drop = "" if pd.isna(r.worst_drop) else f"{100 * r.worst_drop:.1f}"
        lines.append(f"| {r.model} | {100 * r.accuracy:.2f} | {drop} | {r.memory_bytes / 1024:.1f} |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[float]], path: Path, title: str) -> None:
    """Test accuracy (%) along each student's distillation, x as a fraction of its training."""
    # heavy: matplotlib (only the plot needs it)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib, after the backend is chosen

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, c in curves.items():
        ax.plot([(i + 1) / len(c) for i in range(len(c))], [100 * a for a in c], label=name)
    ax.set_xlabel("fraction of distillation done")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
