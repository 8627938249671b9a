"""The one small interface every framework adapter implements, and the observation it returns.

An adapter has two halves. The *static* half (``missing``, ``unsupported``, ``repro``) runs in
the test process and must not import its framework: deciding that Keras cannot express
``proj_size`` costs nothing. The *worker* half (``setup``, ``devices``, ``load_weights``,
``read_weights``, ``run``) runs inside the adapter's own worker process, where the framework is
imported once and reused.
"""

from __future__ import annotations

import importlib.util
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..spec import Config


@dataclass
class Observation:
    """What one run produced: native facts, the canonical form they map to, and how."""

    status: str = "ok"                 # ok | rejected | unsupported | error | skipped
    reason: str = ""                   # why unsupported / skipped, or the error message
    traceback: str = ""
    returns: list[dict] = field(default_factory=list)   # native returned tensors, in native order
    params: list[dict] = field(default_factory=list)    # native parameter tensors: name, shape
    param_count: int | None = None
    output: Any = None                 # canonical output array (batch-first)
    states: list | None = None         # canonical [(h, c), ...] per layer, then direction
    call_outputs: list | None = None   # calls > 1: every call's canonical output, in order (the last is ``output``)
    normalization: list[str] = field(default_factory=list)   # how native maps to canonical, in words
    construct: str = ""                # the native construct, in words
    # seconds (build_s, run_s, total_s, roundtrip_s, ...) and the worker's memory after the run, in MiB
    # (rss_mb: resident now, peak_rss_mb: the most it has held)
    timings: dict = field(default_factory=dict)
    # What went wrong, as data, when the run is an error (None otherwise):
    # {"kind": "exception", "type": "MemoryError"} (the run raised; SystemExit adds its "code"),
    # {"kind": "signal", "signal": "SIGSEGV", "code": -11} (the worker was killed by a signal),
    # {"kind": "exit", "code": 3} (the worker exited), {"kind": "timeout", "seconds": 2.0} (the worker
    # was killed after the timeout). The runner adds "phase": "start" when the worker failed while
    # starting ("errno" too when the process could not even be created: the next run tries again), and
    # "repeated": true when a later run reports that start failure instead of retrying it. The test
    # process's side of a run that failed gives "phase": "reference" (the float64 reference), "checks",
    # or "suite" (anything else of the suite's own).
    fault: dict | None = None
    # The framework refused the configuration or the input at run time (status "rejected"): {"type": the
    # exception's class name, "types": its classes' names (MRO), "message": its message, "phase": "build"
    # or "call"}. A native fact, compared with what the canonical semantics accepts (check ``accepts``).
    rejection: dict | None = None
    # What the framework warned of during the run (``warnings``): [{"type": the category's name, "types": its
    # classes' names, "message"}], each distinct one once (``worker.recorded_warnings``). A native fact claims read.
    warnings: list = field(default_factory=list)
    # The shapes the framework infers without computing (``Impl.infer``), attached by the worker when asked:
    # {"api", "returns", "param_count", "unknown": the dims left unknown, "attempts": the inferences the
    # framework refused first (with more dims unknown)}, or {"cannot": why the framework has no way to},
    # or {"refused": the framework's rejection with every dim known, "attempts"}. None: not asked.
    symbolic: dict | None = None
    # Keras's ``model.summary()`` of the construct (``Impl.summary``), when a summary claim asks: {"text", "how"}
    # or {"cannot": why}. None: not asked.
    summary: dict | None = None


class Rejected(Exception):
    """A framework's own exception, raised inside :func:`native` (the framework refused what it was
    given): the worker makes it a ``rejected`` observation instead of an ``error``."""

    def __init__(self, exc: BaseException, phase: str):
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.info = {"type": type(exc).__name__, "types": [t.__name__ for t in type(exc).__mro__[:-1]],
                     "message": str(exc), "phase": phase}


class NotAsked(Exception):
    """Raised by ``Impl.infer``: the adapter does not ask its framework with these dimensions unknown in this
    session (the message says why, and how to ask): the worker records it and asks with fewer unknown."""


_OWN_CODE = str(Path(__file__).resolve().parent.parent)     # the conformance package


@contextmanager
def native(phase: str):
    """Around an adapter's calls into its framework (``phase``: "build" the construct, or "call" it): an
    exception the framework raises is a :class:`Rejected`, a native fact. One raised by the suite's own
    code in the block (its innermost frame in the conformance package) stays an error: a bug of ours is
    never reported as the framework's refusal."""
    try:
        yield
    except Exception as exc:   # noqa: BLE001 - classified below, re-raised either way
        frames = traceback.extract_tb(exc.__traceback__)
        if frames and not str(Path(frames[-1].filename).resolve()).startswith(_OWN_CODE):
            raise Rejected(exc, phase) from exc
        raise


def dtype_name(dtype) -> str:
    """A framework's dtype by NumPy's name for it (``float32``, ``bfloat16``): NumPy and JAX dtypes and
    TensorFlow's ``DType`` have a ``name``; torch's print as ``torch.float32``."""
    name = getattr(dtype, "name", None)
    return (name if isinstance(name, str) else str(dtype)).removeprefix("torch.")


def returned(path: str, role: str, array, *, top: bool = True, layer: int | None = None,
             direction: str | None = None) -> dict:
    """Describe one native returned tensor (role from spec.ROLES, or the name of another part such as a
    PackedSequence's ``batch_sizes``), its dtype by :func:`dtype_name`, as returned (before any widening).
    ``array`` may be a framework's symbolic tensor (``keras.KerasTensor``, ``jax.ShapeDtypeStruct``, a torch
    meta or fake tensor): a dimension it leaves unknown is ``None``."""
    return {"path": path, "role": role, "shape": [None if d is None else int(d) for d in array.shape],
            "dtype": dtype_name(array.dtype),
            "top": top, "layer": layer, "direction": direction}


def one_batch_axis(cfg: Config, api: str) -> str | None:
    """Why ``api``, which takes one batch axis, cannot express a ``batch_shape`` of several, or None."""
    if cfg.batch_shape is not None:
        return (f"batch_shape {list(cfg.batch_shape)}: {api} takes one batch axis ((B, T, F) input), not several "
                "leading ones")
    return None


def per_layer_unsupported(cfg: Config, construct: str, states: str) -> str | None:
    """Why an adapter that builds its stack layer by layer (``construct``, each layer given its own initial
    ``states``) cannot express a stack of no layers or another count of initial-state entries, or None."""
    if cfg.num_layers == 0:
        return (f"num_layers 0: the stack of {construct} is the adapter's own, one layer per num_layers; a stack of "
                "none builds nothing for the framework to accept or refuse (torch.nn.LSTM takes num_layers, and "
                "refuses 0)")
    if cfg.feed_state_layers is not None:
        return (f"feed_state_layers: each {construct} is given its own initial state ({states}); another count of "
                "(layer, direction) entries than the stack has has no spelling (torch.nn.LSTM stacks them all in one "
                "h_0 of L*D entries)")
    return None


def to_numpy(array) -> np.ndarray:
    return np.asarray(array)


def placeholder(shape, dtype: str) -> np.ndarray:
    """Shape-only mode (``Impl.run_shapes``): an array of the ``shape`` a framework inferred, holding no numbers
    (zeros, every stride 0: it costs no memory), so that a run's normalization (transposes, flips, slices) gives
    the canonical shapes as it does for computed arrays. bfloat16, which NumPy lacks, is float32 (as the adapters
    widen it); every other dtype by its name."""
    np_dtype = np.float32 if dtype == "bfloat16" else np.dtype(dtype)
    return np.broadcast_to(np.zeros((), np_dtype), tuple(int(d) for d in shape))


UNKNOWN_DIMS = ("batch", "time")     # the dimensions ``Impl.infer`` may be asked to leave unknown


class Impl:
    """Base class: subclasses set the class attributes and implement the worker half."""

    id: str = ""
    requires: tuple[str, ...] = ()     # top-level modules that must be importable
    install_hint: str = ""
    param_formula: str = ""            # key into reference.PARAM_FORMULAS
    env: dict[str, str] = {}           # environment for the worker process (set before import)

    def release(self) -> None:
        """Worker half: free what the framework keeps from earlier runs (compiled programs, caches),
        so that a worker's memory stays bounded over thousands of new shapes. The worker calls it
        every ``worker.RELEASE_EVERY`` runs; the default frees nothing."""

    # ---- static half: no framework imports ----
    def missing(self) -> str | None:
        """Why this impl cannot run here at all (framework not installed), or None."""
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not installed ({self.install_hint})"
        return None

    def installed_versions(self) -> dict[str, str]:
        """The installed version of every package ``requires`` names, from package metadata (the
        framework is not imported): what ``conformance impls`` lists without starting anything."""
        from importlib import metadata

        dists = metadata.packages_distributions()
        out = {}
        for mod in self.requires:
            for dist in dists.get(mod, [mod]):
                try:
                    out[dist] = metadata.version(dist)
                except metadata.PackageNotFoundError:
                    pass
        return out

    # Native keywords the adapter itself sets from the case's fields: a case's `native:` may not set them
    # (the field says what they are); None: this adapter does not take native keywords yet.
    own_keywords: tuple[str, ...] | None = None

    def own_keywords_for(self, cfg: Config) -> tuple[str, ...]:
        """The keywords the adapter sets from ``cfg``'s fields (``own_keywords``; an adapter may leave one free
        where the configuration makes it moot)."""
        return self.own_keywords or ()

    def unsupported(self, cfg: Config) -> str | None:
        """Why this framework cannot express ``cfg`` (None if it can). Never approximate."""
        return self.native_conflict(cfg)

    def native_conflict(self, cfg: Config) -> str | None:
        """Why the case's native keywords for this implementation cannot be passed, or None."""
        given = cfg.native_for(self.id)
        if not given:
            return None
        if self.own_keywords is None:
            return (f"the {self.id} adapter does not pass native keywords yet (the case gives "
                    f"{', '.join(sorted(given))})")
        clash = sorted(set(given) & set(self.own_keywords_for(cfg)))
        if clash:
            return (f"native keyword{'s' if len(clash) > 1 else ''} {', '.join(clash)}: the {self.id} adapter sets "
                    "them from the case's fields; set those fields instead")
        return None

    def repro(self, cfg: Config) -> str:
        """The few lines of native code that reproduce this run, copy-pastable.

        A self-contained Python program (imports NumPy and the framework only, no ``conformance``)
        that builds the same native construct ``run`` builds for ``cfg`` (same constructor
        arguments, dtype and seeding calls), feeds it the suite's input (``reference.make_input``
        then ``to_native_layout``, written inline with NumPy), calls it as ``run`` does and prints
        the shape of every tensor the native call returns, in native order, one per line as
        ``<path> (<shape>)`` (the path as in ``Observation.returns``, after the variable ``out``),
        then ``params <native parameter count>``. Raises ``ValueError`` with the reason when
        ``unsupported(cfg)`` says the framework cannot express ``cfg``. Static half: must not
        import the framework.
        """
        raise NotImplementedError

    # ---- symbolic half (worker): shapes without computing ----
    def infer(self, cfg: Config, device: str, unknown: tuple[str, ...]) -> dict:
        """The shapes of what ``run`` returns for ``cfg``, as the framework infers them without computing any
        value (Keras: symbolic ``keras.Input`` tensors; torch: ``torch.export`` with ``Dim``s, or the meta
        device; JAX/Flax: ``jax.eval_shape`` with ``jax.export.symbolic_shape`` dims), with the dimensions
        named in ``unknown`` (a subset of ``UNKNOWN_DIMS``: the batch, the time steps) of unknown size.

        Returns ``{"api": what inferred them, in words, "returns": [returned(...)] (the same paths, roles,
        top, layer and direction as ``run`` records, a dimension the framework left unknown ``None``, one it
        fixed to a number that number), "param_count": the native parameter count or None, "notes": [...]}``.
        The framework's refusal raises :class:`Rejected` (calls inside :func:`native`); the worker then asks
        again with fewer unknown dimensions. ``NotImplementedError(reason)``: the framework has no way to
        infer this construct (a fact, said in the check)."""
        raise NotImplementedError(f"the {self.id} adapter has no symbolic inference")

    def run_shapes(self, cfg: Config, device: str, init) -> Observation:
        """Shape-only mode: ``run``'s observation for ``cfg`` from the framework's inference with every
        dimension known, instead of a computation: ``returns``, ``params``, ``param_count``, ``construct`` and
        ``normalization`` as ``run`` gives them, ``output`` and ``states`` as :func:`placeholder` arrays of the
        canonical shapes (normalized by the same code as ``run``), no numbers. ``init`` as in ``run`` (only its
        shapes matter). Raises :class:`Rejected` as ``run`` does."""
        raise NotImplementedError(f"the {self.id} adapter has no shape-only path")

    def summary(self, cfg: Config, device: str) -> dict:
        """Keras: the text ``model.summary()`` prints for the construct ``run`` builds, as a model of an input
        of unknown batch (``{"text", "how"}``); raises :class:`Rejected` where the framework refuses to build
        it, ``NotImplementedError(reason)`` where the framework has no summary."""
        raise NotImplementedError(f"{self.id} has no model.summary()")

    # ---- worker half: runs in the impl's own process ----
    def setup(self) -> dict[str, str]:
        """Import the framework; return its versions."""
        raise NotImplementedError

    def devices(self) -> list[str]:
        """Devices the framework reports: 'cpu' always, 'gpu' when it sees one."""
        raise NotImplementedError

    def device_name(self, device: str) -> str:
        """The device's name as the framework reports it (e.g. the GPU model)."""
        return device

    def load_weights(self, cfg: Config, device: str, weights: dict[str, np.ndarray]):
        """Build the native construct for ``cfg`` on ``device`` holding the canonical ``weights``
        (``reference.canonical_weights``: gate order i, f, g, o, float64) mapped to the native
        layout and dtype: transposes, gate order, a second bias of zeros, per-gate kernels, names.
        Returns whatever ``read_weights`` and ``run`` need (a module, layers, variables)."""
        raise NotImplementedError

    def read_weights(self, cfg: Config, native) -> dict[str, np.ndarray]:
        """The canonical weights a native construct holds (the inverse of ``load_weights``; a
        second bias is added into the one canonical bias). Round-trip tested per impl."""
        raise NotImplementedError

    def run(self, cfg: Config, device: str, x: np.ndarray, weights: dict[str, np.ndarray],
            init: list[tuple[np.ndarray, np.ndarray]] | None) -> Observation:
        """Build the native construct for ``cfg`` with ``weights`` (``load_weights``) and run it on
        canonical input ``x`` (B, T, F) on ``device``: fed in the case's layout, with ``cfg.lengths``
        as the framework's own padding mechanism, the initial states ``init`` ((h0, c0) per layer, then
        direction; None: not given) in the framework's own form and order, and ``cfg.go_backwards``
        as its own option. The observation holds the native facts and the canonical form."""
        raise NotImplementedError
