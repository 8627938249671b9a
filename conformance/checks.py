"""Checks: one question each, asked of a run's observation against the reference.

Each check function returns an :class:`Outcome` (did the implementation match the canonical
semantics, with the evidence). :func:`evaluate` then applies the declared divergences: an
undeclared mismatch is ``diverge``, a declared one ``known-divergence``, and a declaration whose
mismatch no longer happens is ``stale``. Checks know nothing about particular frameworks; what a
framework does natively is the adapter's business.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass, field

import numpy as np

from . import reference
from .impls.base import Observation
from .spec import CHECKS, ROLES, Case, Claim, Divergence

AGREE, KNOWN, DIVERGE, UNSUPPORTED, ERROR, STALE, SKIPPED = (
    "agree", "known-divergence", "diverge", "unsupported", "error", "stale", "skipped")
VERDICTS = (AGREE, KNOWN, DIVERGE, STALE, ERROR, UNSUPPORTED, SKIPPED)
FAILING = (DIVERGE, STALE, ERROR)
_SEVERITY = {ERROR: 5, DIVERGE: 4, STALE: 3, KNOWN: 2, AGREE: 1, UNSUPPORTED: 0, SKIPPED: 0}


def worst(verdicts) -> str:
    verdicts = list(verdicts)
    return max(verdicts, key=_SEVERITY.__getitem__) if verdicts else AGREE


@dataclass
class Outcome:
    ok: bool
    details: dict = field(default_factory=dict)
    declarable: bool = True        # False: a mismatch no declaration may excuse
    conclusive: bool = True        # False: the evidence agrees with a declared difference too (never stale)
    verdict: str | None = None     # set directly by checks with their own declarations (claims)


def _shape(a) -> list[int] | None:
    return None if a is None else [int(d) for d in np.shape(a)]


def check_output_shape(case: Case, obs: Observation) -> Outcome:
    expected = list(reference.output_shape(case.config))
    observed = _shape(obs.output)
    return Outcome(observed == expected, {"expected": expected, "observed": observed})


def _states_cfg(case: Case, obs: Observation):
    """The configuration the observed states are checked against: the case's, or, where the framework
    returned states the case did not ask for (torch always returns (h_n, c_n), a carry comes back
    with the output), the case's with ``return_state``: they are compared all the same."""
    cfg = case.config
    return dataclasses.replace(cfg, return_state=True) if obs.states is not None and not cfg.return_state else cfg


def check_state_shapes(case: Case, obs: Observation) -> Outcome:
    exp = reference.state_shapes(_states_cfg(case, obs))
    expected = None if exp is None else [[list(h), list(c)] for h, c in exp]
    observed = None if obs.states is None else [[_shape(h), _shape(c)] for h, c in obs.states]
    details = {"expected": expected, "observed": observed, "labels": reference.state_labels(case.config)}
    if obs.states is not None and not case.config.return_state:
        details["unrequested"] = True
    return Outcome(observed == expected, details)


def check_dtype(case: Case, obs: Observation) -> Outcome | None:
    """Every returned tensor that is an output or a state (whatever its place in the native return) has
    the case's dtype; a framework that computes or returns in another dtype is a difference."""
    tensors = [r for r in obs.returns if r.get("role") in ROLES]
    if not tensors:
        return None
    expected = case.config.dtype
    rows = [{"path": r["path"], "role": r["role"], "dtype": r["dtype"]} for r in tensors]
    wrong = [r for r in rows if r["dtype"] != expected]
    return Outcome(not wrong, {"expected": expected, "observed": sorted({r["dtype"] for r in rows}),
                               "tensors": rows, "wrong": [f"{r['path'] or '(the return)'} ({r['role']}): {r['dtype']}"
                                                          for r in wrong]})


def _refusal_text(info: dict | None) -> str:
    return f"refused: {(info or {}).get('type')}: {(info or {}).get('message')}"


def _dims_match(symbolic, eager) -> bool:
    """A symbolic shape against an eager one: the same rank, every known dimension the same (an unknown one,
    None, matches any size)."""
    return symbolic is not None and eager is not None and len(symbolic) == len(eager) and all(
        s is None or s == e for s, e in zip(symbolic, eager))


def check_symbolic(case: Case, obs: Observation) -> Outcome | None:
    """Shapes without running: what the framework infers of the returns (``Impl.infer``: Keras's symbolic
    ``keras.Input``, ``torch.export`` or the meta device, ``jax.eval_shape``), with the batch and the time steps
    unknown where it can, against what the call really returned: the same tensors at the same places, every
    known dimension and dtype the same, the same parameter count; an inference that refuses what the call
    accepts (or accepts what it refuses) differs too. A framework that has no way to infer is a fact (skipped,
    with its reason); one that needed a dimension known says so (``attempts``)."""
    sym = obs.symbolic
    if sym is None:
        return None
    if "cannot" in sym:
        return Outcome(True, {"reason": sym["cannot"]}, verdict=SKIPPED)
    attempts = [{"unknown": a.get("unknown"), "refused": _refusal_text(a.get("refused")) if "refused" in a
                 else f"not asked: {a.get('not_asked')}"} for a in sym.get("attempts") or []]
    if "error" in sym:
        err = sym["error"]
        return Outcome(False, {"error": f"{err.get('type')}: {err.get('message')}", "traceback": err.get("traceback"),
                               "attempts": attempts}, verdict=ERROR)
    eager = _refusal_text(obs.rejection) if obs.status == "rejected" else "accepted"
    if "refused" in sym or obs.status == "rejected":
        symbolic = _refusal_text(sym["refused"]) if "refused" in sym else "accepted"
        cfg = case.config
        empty = [dim for dim, size in (("batch", cfg.batch), ("time", cfg.timesteps))
                 if size == 0 and dim in (sym.get("unknown") or [])]
        if empty and "refused" not in sym:
            # An unknown dimension is inferred for sizes of 1 and more (jax's symbolic dimensions are >= 1 by
            # definition; Keras's None and torch's Dim alike): accepting it says nothing of a size of 0, which the
            # call refused. Not evidence either way.
            return Outcome(True, {"api": sym.get("api", ""), "symbolic": symbolic, "eager": eager,
                                  "attempts": attempts, "reason": f"inferred with the {' and '.join(empty)} unknown "
                                  f"(for sizes of 1 and more); the call has {' and '.join(empty)} 0"}, verdict=SKIPPED)
        ok = ("refused" in sym) == (obs.status == "rejected")
        problems = [] if ok else [f"shape inference {'refuses' if 'refused' in sym else 'accepts'} what the call "
                                  f"{'accepts' if obs.status != 'rejected' else 'refuses'}"]
        return Outcome(ok, {"api": sym.get("api", ""), "symbolic": symbolic, "eager": eager, "attempts": attempts,
                            "problems": problems}, conclusive=not ok or "refused" not in sym)
    real = [r for r in obs.returns]
    inferred = list(sym.get("returns") or [])
    problems = []
    if [r["path"] for r in inferred] != [r["path"] for r in real]:
        problems.append(f"inferred returns at {[r['path'] for r in inferred]}, the call returned "
                        f"{[r['path'] for r in real]}")
    for s, e in zip(inferred, real):
        if s["path"] != e["path"]:
            continue
        where = s["path"] or "(the return)"
        if not _dims_match(s.get("shape"), e.get("shape")):
            problems.append(f"{where}: inferred {_shape_text(s.get('shape'))}, returned {_shape_text(e.get('shape'))}")
        if s.get("dtype") and e.get("dtype") and s["dtype"] != e["dtype"]:
            problems.append(f"{where}: inferred dtype {s['dtype']}, returned {e['dtype']}")
    if sym.get("param_count") is not None and obs.param_count is not None and sym["param_count"] != obs.param_count:
        problems.append(f"inferred {sym['param_count']} parameters, the built construct has {obs.param_count}")
    unknown = sorted({r["path"] or "(the return)" for r in inferred if None in (r.get("shape") or [])})
    # A configuration the canonical semantics refuses (a wrong input or state) that the call and the inference both
    # accepted (a framework that broadcasts it): no evidence against an inference declared not to check it.
    conclusive = reference.rejects(case.config) is None
    return Outcome(not problems, {
        "api": sym.get("api", ""), "unknown": sym.get("unknown", []), "attempts": attempts,
        "symbolic": [{"path": r["path"], "role": r.get("role"), "shape": r.get("shape"), "dtype": r.get("dtype")}
                     for r in inferred],
        "param_count": sym.get("param_count"), "left_unknown": unknown, "notes": sym.get("notes") or [],
        "problems": problems}, conclusive=conclusive)


def _shape_text(shape) -> str:
    if shape is None:
        return "nothing"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _tol(dtype) -> float:
    name = dtype if isinstance(dtype, str) else str(np.dtype(dtype))
    return {"float64": 1e-12, "float32": 1e-5}.get(name, 1e-2)


def check_state_order(case: Case, obs: Observation) -> Outcome | None:
    """Are canonical states really (h, c), and is the top layer's h the output's final step?

    Derived from the cell equations, without the weights: h = o * act(c) with o in [0, 1] (the gate
    activation is sigmoid or hard_sigmoid), so |h| <= |act(c)| and sign(h) = sign(act(c))
    elementwise; swapped states break this. With proj_size h is projected, so only the shapes
    (checked elsewhere) and the link to the output identify it; with gates outside [0, 1] (relu,
    linear, tanh) only the link to the output.
    """
    cfg = case.config
    if obs.states is None or _shape(obs.output) != list(reference.output_shape(cfg)):
        return None
    labels = reference.state_labels(cfg)
    wanted = reference.state_shapes(dataclasses.replace(cfg, return_state=True))
    if len(obs.states) != len(wanted) or any(_shape(h) != list(wh) or _shape(c) != list(wc)
                                             for (h, c), (wh, wc) in zip(obs.states, wanted)):
        return None  # state_shapes reports this
    problems = []
    if not cfg.proj_size and cfg.recurrent_activation in ("sigmoid", "hard_sigmoid"):
        act = reference.ACTIVATIONS[cfg.activation]
        stepped = reference.valid_mask(cfg).any(axis=1)    # a sequence with no real step keeps its initial state
        for label, (h, c) in zip(labels, obs.states):
            h, c = np.asarray(h, np.float64)[stepped], np.asarray(c, np.float64)[stepped]
            # the less precise of the dtype computed in (the case's) and the one returned: a bfloat16 run
            # returned as float32 rounds h = o*act(c) to bfloat16's 8 bits, past |act(c)| by up to ~0.4%
            tol = max(_tol(np.asarray(obs.states[0][0]).dtype), _tol(cfg.dtype))
            ac = act(c)
            bound_ok = np.all(np.abs(h) <= np.abs(ac) * (1 + tol) + tol)
            sign_ok = np.all((np.sign(h) == np.sign(ac)) | (np.abs(h) <= tol))
            if not (bound_ok and sign_ok):
                problems.append(f"{label}: the pair does not satisfy h = o*{cfg.activation}(c) (|h| <= "
                                f"|{cfg.activation}(c)|, same sign): h and c look swapped")
    # The top layer's final hidden state per direction must be what the output says it is.
    D, Hp, L = cfg.directions, reference.hidden_out(cfg), cfg.num_layers
    tops = [np.asarray(obs.states[(L - 1) * D + d][0]) for d in range(D)]
    out = np.asarray(obs.output)
    if reference.side_by_side(cfg) or D == 1:
        first_valid, last_valid = reference.first_and_last_valid(cfg)
        if cfg.return_sequences and (cfg.timesteps == 0 or (last_valid < 0).any()):
            finals, where = [], ""     # a sequence with no step has no final output to compare with its h
        elif cfg.return_sequences:
            rows = np.arange(cfg.batch)
            last, first = out[rows, last_valid], out[rows, first_valid]
            finals = [(first if reference.reads_backwards(cfg, d) else last)[:, k * Hp:(k + 1) * Hp]
                      for k, d in enumerate(reference.direction_names(cfg))]
            where = " and ".join(f"output at each sequence's {'first' if reference.reads_backwards(cfg, d) else 'last'} "
                                 f"valid step ({d}{', read backwards' if reference.reads_backwards(cfg, d) else ''})"
                                 for d in reference.direction_names(cfg))
        else:
            finals = [out[:, d * Hp:(d + 1) * Hp] for d in range(D)]
            where = "output"
        for d, (h, f) in enumerate(zip(tops, finals)):
            if not np.allclose(h, f, rtol=1e-4, atol=_tol(out.dtype)):
                problems.append(f"layer{L - 1}/{reference.direction_names(cfg)[d]}: h is not the final hidden "
                                f"state seen in {where}")
    return Outcome(not problems, {"problems": problems, "labels": labels})


def check_param_count(case: Case, obs: Observation, formula_name: str) -> Outcome | None:
    if obs.param_count is None:
        return None
    formula = reference.PARAM_FORMULAS[formula_name]
    canonical = reference.param_count(case.config)
    documented = formula.count(case.config)
    details = {"observed": obs.param_count, "canonical": canonical, "documented": documented,
               "formula": formula.text, "formula_source": formula.source}
    if obs.param_count != documented:
        details["problem"] = (f"the real parameter count {obs.param_count} differs from the framework's "
                              f"documented formula ({documented})")
        return Outcome(False, details, declarable=False)
    # A layer of no units has no parameters whatever the formula (a second bias of width 0): agreeing on 0 is no
    # evidence against a declared formula difference.
    return Outcome(obs.param_count == canonical, details, conclusive=canonical != 0)


# Default tolerances of the values check, per dtype and device: |observed - reference| <= atol +
# rtol * |reference| elementwise, against the float64 reference. A case's `tolerance:` overrides them.
TOLERANCES = {
    ("float64", "cpu"): (1e-9, 1e-7), ("float64", "gpu"): (1e-9, 1e-7),
    ("float32", "cpu"): (1e-5, 1e-4), ("float32", "gpu"): (5e-5, 5e-4),   # GPU: TF32 disabled by the adapters
    ("float16", "cpu"): (2e-2, 2e-2), ("float16", "gpu"): (2e-2, 2e-2),
    ("bfloat16", "cpu"): (6e-2, 6e-2), ("bfloat16", "gpu"): (6e-2, 6e-2),
}


def tolerance(case: Case, device: str) -> tuple[float, float]:
    atol, rtol = TOLERANCES[(case.config.dtype, "gpu" if device.startswith("gpu") else "cpu")]
    return case.tolerance.get("atol", atol), case.tolerance.get("rtol", rtol)


# The values and padding checks compare in chunks of about this many elements, so that their float64
# temporaries stay small (a few MB) whatever the size of the tensors compared: the test process
# holds the observation and the reference, and not several float64 copies of the output besides.
CHUNK_ELEMENTS = 1 << 18


def _rows(a) -> np.ndarray:
    """``a`` as 2-D (every leading axis as rows, the last axis as columns): a view for the contiguous
    arrays workers and the reference return."""
    a = np.asarray(a)      # (rows counted, not -1: numpy cannot infer them when the last axis is 0 wide)
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1]) if a.ndim else a.reshape(1, 1)


def _chunks(n_rows: int, width: int):
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    return (slice(s, min(s + step, n_rows)) for s in range(0, n_rows, step))


def _compare(observed, expected, atol, rtol, rows=None, cols=slice(None)) -> tuple[float, float, np.ndarray]:
    """``observed`` against ``expected`` (same shape), elementwise ``|observed - expected| <= atol +
    rtol * |expected|`` in float64, at the rows (leading axes) where ``rows`` is true and the columns
    ``cols`` of the last axis: (largest absolute error, largest relative error, per row whether any
    element is out of tolerance). NaN anywhere compared makes the errors NaN and the row bad."""
    obs2, exp2 = _rows(observed), _rows(expected)
    n = obs2.shape[0]
    keep_rows = None if rows is None else np.asarray(rows, bool).reshape(-1)
    bad_rows = np.zeros(n, bool)
    max_abs = max_rel = np.float64(0.0)
    for sl in _chunks(n, obs2.shape[1]):
        o, e = np.asarray(obs2[sl, cols], np.float64), exp2[sl, cols]
        keep = None if keep_rows is None else keep_rows[sl]
        if keep is not None:
            if not keep.any():
                continue
            o, e = o[keep], e[keep]
        err = np.abs(o - e)
        if err.size:
            max_abs = np.maximum(max_abs, err.max())            # np.maximum keeps a NaN
            max_rel = np.maximum(max_rel, (err / np.maximum(np.abs(e), 1e-12)).max())
        bad = ~(err <= atol + rtol * np.abs(e))
        bad = bad.any(-1) if bad.ndim > 1 else bad
        if keep is None:
            bad_rows[sl] = bad
        else:
            bad_rows[sl][keep] = bad
    return float(max_abs), float(max_rel), bad_rows


def _first_divergence(cfg, obs: Observation, ref: reference.Forward, atol, rtol) -> str | None:
    """Where the implementation first leaves the reference, in the order the LSTM computes: layer by
    layer; in the top layer the output sequence step by step (in each direction's reading order)
    before the final states; h before c."""
    names, L, D = reference.direction_names(cfg), cfg.num_layers, cfg.directions
    mask = reference.valid_mask(cfg)
    for layer in range(L):
        if layer == L - 1 and cfg.return_sequences and obs.output is not None:
            Hp = reference.hidden_out(cfg)
            split = reference.side_by_side(cfg) or len(names) == 1
            for d, name in enumerate(names if split else ("merged",)):
                cols = slice(d * Hp, (d + 1) * Hp) if split else slice(None)
                bad = _compare(obs.output, ref.output, atol, rtol, rows=mask, cols=cols)[2].reshape(mask.shape)
                if bad.any():
                    steps = np.nonzero(bad.any(0))[0]
                    backwards = reference.reads_backwards(cfg, name)
                    t = int(steps.max() if backwards else steps.min())
                    return (f"layer {layer}, {name} direction, time step {t} ({'reading backwards' if backwards else 'reading forwards'}): "
                            "h (the output sequence)")
        if obs.states is not None:
            for d, name in enumerate(names):
                k = layer * D + d
                for which, observed, expected in (("h", obs.states[k][0], ref.states[k][0]),
                                                  ("c", obs.states[k][1], ref.states[k][1])):
                    if _compare(observed, expected, atol, rtol)[2].any():
                        return f"layer {layer}, {name} direction, final state: {which}"
    if not cfg.return_sequences and _compare(obs.output, ref.output, atol, rtol)[2].any():
        return f"layer {L - 1}: the output (each direction's final h, merged)"
    return None


def check_values(case: Case, obs: Observation, device: str, ref: reference.Forward) -> Outcome | None:
    """Same weights, same numbers: the canonical output and every state against the float64 reference
    (the output only at valid steps: what an implementation puts at padded steps is `padding`'s)."""
    cfg = case.config
    if obs.output is None or _shape(obs.output) != list(reference.output_shape(cfg)):
        return None
    if obs.states is not None and [[_shape(h), _shape(c)] for h, c in obs.states] != \
            [[list(h), list(c)] for h, c in reference.state_shapes(_states_cfg(case, obs))]:
        return None
    atol, rtol = tolerance(case, device)
    mask = reference.valid_mask(cfg)
    tensors = [("output", obs.output, ref.output, mask if cfg.return_sequences else None)]
    earlier = list(zip(obs.call_outputs or [], ref.call_outputs or []))[:-1]    # (the last call's is "output")
    tensors += [(f"call{k + 1}/output", o, r, mask if cfg.return_sequences else None)
                for k, (o, r) in enumerate(earlier) if _shape(o) == list(np.shape(r))]
    if obs.states is not None:
        for label, (h, c), (rh, rc) in zip(reference.state_labels(cfg), obs.states, ref.states):
            tensors += [(f"{label}/h", h, rh, None), (f"{label}/c", c, rc, None)]
    rows = []
    for name, observed, expected, where in tensors:
        max_abs, max_rel, bad = _compare(observed, expected, atol, rtol, rows=where)
        rows.append({"tensor": name, "max_abs": max_abs, "max_rel": max_rel, "ok": bool(not bad.any())})
    ok = all(r["ok"] for r in rows)
    # Returned in a less precise dtype than the case's (a float32 output for a float64 case): agreeing
    # within the case's tolerance is then luck of the data, not evidence against a declared difference.
    lower = [r for r in obs.returns if r.get("role") in ROLES and _bits(r.get("dtype")) < _bits(cfg.dtype)]
    return Outcome(ok, {"atol": atol, "rtol": rtol, "tensors": rows,
                        "first": None if ok else _first_divergence(cfg, obs, ref, atol, rtol)},
                   conclusive=not lower)


def _bits(dtype) -> int:
    """A float dtype's mantissa bits (how precise it is); 0 for anything else."""
    return {"float64": 52, "float32": 23, "float16": 10, "bfloat16": 7}.get(str(dtype), 0)


def _previous_outputs(cfg, output) -> np.ndarray:
    """(B, T, F) float64: at each step, the output of the sequence's latest real step before it in reading
    order (time order; reversed for go_backwards and for the backward half of a concat), or the initial h
    where there is none (zeros unless given; NaN, never equal, when given)."""
    mask = reference.valid_mask(cfg)
    out = np.asarray(output, np.float64)

    def held(m, o):
        T = m.shape[1]
        latest = np.where(m, np.arange(T)[None, :], -1)
        np.maximum.accumulate(latest, axis=1, out=latest)
        prev = o[np.arange(m.shape[0])[:, None], np.maximum(latest, 0)]
        prev[latest < 0] = 0.0 if cfg.initial_state == "none" else np.nan
        return prev

    def backwards(m, o):
        return held(m[:, ::-1], o[:, ::-1])[:, ::-1]

    if reference.side_by_side(cfg):
        Hp = reference.hidden_out(cfg)
        halves = [out[..., :Hp], out[..., Hp:]]
        return np.concatenate([backwards(mask, o) if reference.reads_backwards(cfg, d) else held(mask, o)
                               for o, d in zip(halves, ("forward", "backward"))], axis=-1)
    return backwards(mask, out) if cfg.go_backwards else held(mask, out)


def check_padding(case: Case, obs: Observation) -> Outcome | None:
    """What an implementation puts at masked output steps (past a sequence's length, or where its mask is
    0). Canonically zeros, as the reference; repeating the latest real output or computing on the padding
    is a real difference between frameworks, recorded and declared."""
    cfg = case.config
    valid = reference.valid_mask(cfg)
    if not (cfg.masked and cfg.return_sequences and not valid.all()) or \
            _shape(obs.output) != list(reference.output_shape(cfg)):
        return None
    T = cfg.timesteps
    out = _rows(obs.output)                                  # (B·T, F), row b·T + t
    pad = ~valid.reshape(-1)
    last = _previous_outputs(cfg, obs.output).reshape(cfg.batch * T, -1)
    tol = _tol(np.float64)
    zeros = repeated = leading = True
    max_abs = np.float64(0.0)
    for sl in _chunks(out.shape[0], out.shape[1]):
        keep = pad[sl]
        if not keep.any():
            continue
        at_pad = np.asarray(out[sl][keep], np.float64)
        zeros = zeros and bool(np.all(at_pad == 0))
        repeated = repeated and bool(np.allclose(last[sl][keep], at_pad, rtol=0, atol=tol))
        leading = leading and bool(np.isnan(last[sl][keep]).all())
        max_abs = np.maximum(max_abs, np.abs(at_pad).max(initial=0.0))     # (outputs of no units: nothing)
    if zeros and repeated:
        behaviour = "zeros (which is also the last valid output, repeated, for these sequences)"
    elif zeros:
        behaviour = "zeros"
    elif repeated:
        behaviour = "the last valid output, repeated"
    else:
        behaviour = "computed values (the padding is read as input)"
    # Zeros at padded steps that no real step precedes (in reading order) after a given initial state: a
    # framework that repeats the previous output from zeros (Keras on TensorFlow and torch) looks the same as
    # one that writes zeros, so such zeros are no evidence against a declared repetition.
    return Outcome(zeros, {"behaviour": behaviour, "padded_steps": int(pad.sum()),
                           "max_abs_at_padding": float(max_abs)},
                   conclusive=not (zeros and (repeated or leading)))


def _claim_verdict(claim: Claim, obs: Observation, directions: int = 1) -> dict:
    tops = [r for r in obs.returns if r.get("top", True)]
    real = {"outputs": [r["shape"] for r in tops], "roles": [r["role"] for r in tops],
            "param_count": obs.param_count}
    claimed, holds = {}, True
    if claim.outputs is not None:
        claimed["outputs"] = [list(s) for s in claim.outputs]
        holds &= claimed["outputs"] == real["outputs"]
    if claim.roles is not None:
        claimed["roles"] = list(claim.roles)
        holds &= len(claim.roles) == len(real["roles"]) and all(
            c in ("?", r) for c, r in zip(claim.roles, real["roles"]))
    if claim.param_count is not None:
        claimed["param_count"] = claim.param_count
        holds &= claim.param_count == real["param_count"]
    if claim.dtypes is not None:
        claimed["dtypes"], real["dtypes"] = list(claim.dtypes), [r["dtype"] for r in tops]
        holds &= claimed["dtypes"] == real["dtypes"]
    if claim.paths is not None:
        claimed["paths"], real["paths"] = list(claim.paths), [r["path"] for r in tops]
        holds &= claimed["paths"] == real["paths"]
    if claim.params is not None:
        claimed["params"] = {name: list(shape) for name, shape in claim.params}
        real["params"] = {p["name"]: list(p["shape"]) for p in obs.params}
        holds &= claimed["params"] == real["params"]
    if claim.raises is not None:
        claimed["raises"] = dict(claim.raises)
        info = obs.rejection
        real["raises"] = None if info is None else {"type": info["type"], "message": info["message"]}
        holds &= info is not None and claim.raises_matches(info)
    if claim.values is not None:
        claimed["values"] = dict(claim.values)
        claimed.update(atol=claim.atol, rtol=claim.rtol)
        real["values"] = {}
        for name, numbers in claim.values:
            observed = _canonical_tensor(obs, name, directions)
            want = np.asarray(numbers, np.float64)
            if observed is None or observed.shape != want.shape:
                real["values"][name] = None if observed is None else f"shape {list(observed.shape)}"
                holds = False
                continue
            observed = np.asarray(observed, np.float64)
            real["values"][name] = observed.tolist()
            holds &= bool(np.allclose(observed, want, atol=claim.atol, rtol=claim.rtol))
    if claim.warns is not None:
        claimed["warns"] = dict(claim.warns)
        real["warns"] = [{"type": w["type"], "message": w["message"]} for w in obs.warnings]
        holds &= any(claim.raises_matches(w, claim.warns) for w in obs.warnings)
    if claim.summary is not None:
        claimed["summary"] = claim.summary_dict()
        real["summary"], true = _summary_verdict(claimed["summary"], obs.summary)
        holds &= true
    for key, same in (("same_calls", True), ("different_calls", False)):
        pairs = getattr(claim, key)
        if pairs is None:
            continue
        claimed[key] = [list(p) for p in pairs]
        claimed.update(atol=claim.atol, rtol=claim.rtol)
        outs = obs.call_outputs or []
        real[key] = []
        for a, b in pairs:
            if max(a, b) > len(outs) or np.shape(outs[a - 1]) != np.shape(outs[b - 1]):
                real[key].append(None)
                holds = False
                continue
            equal = bool(np.allclose(np.asarray(outs[a - 1], np.float64), np.asarray(outs[b - 1], np.float64),
                                     atol=claim.atol, rtol=claim.rtol))
            real[key].append({"calls": [a, b], "same": equal})
            holds &= equal == same
    real = {k: v for k, v in real.items() if k in claimed}
    if holds == claim.holds:
        verdict = AGREE if holds else KNOWN
    else:
        verdict = STALE if holds else DIVERGE
    return {"source": claim.source, "says": claim.says, "note": claim.note, "claimed": claimed, "real": real,
            "true": bool(holds), "expected_true": claim.holds, "verdict": verdict, "line": claim.line}


def _summary_verdict(claimed: dict, got: dict | None) -> tuple[dict, bool]:
    """What Keras's real ``model.summary()`` printed, parsed, and whether it is what ``claimed`` quotes: the same
    layer rows (every one but the InputLayer, in order: each quoted column the same, a layer by its type in
    parentheses, a shape without its spacing) and the same totals."""
    from . import summary as summary_text

    if not got or "text" not in got:
        why = (got or {}).get("cannot") or (got or {}).get("refused") or (got or {}).get("error") or "no summary"
        return {"unavailable": why if isinstance(why, str) else f"{why.get('type')}: {why.get('message')}"}, False
    try:
        parsed = summary_text.parse(got["text"])
    except ValueError as exc:
        return {"unavailable": str(exc), "text": got["text"]}, False
    rows = summary_text.layer_rows(parsed)
    real = {"rows": [{"layer": r["layer"], "output_shape": r["output_shape"], "params": r["params"]} for r in rows],
            **{k: parsed[k] for k in ("total_params", "trainable_params", "non_trainable_params")},
            "how": got.get("how", ""), "text": got["text"]}
    holds = True
    if "rows" in claimed:
        holds = len(claimed["rows"]) == len(rows)
        for want, row in zip(claimed["rows"], rows):
            if "layer" in want:
                kind = re.search(r"\((\w+)\)\s*$", want["layer"])
                holds &= (kind.group(1) if kind else want["layer"]) == row["type"]
            if "output_shape" in want:
                holds &= summary_text.shape_text(want["output_shape"]) == summary_text.shape_text(row["output_shape"])
            if "params" in want:
                holds &= want["params"] == row["params"]
    for key in ("total_params", "trainable_params", "non_trainable_params"):
        if key in claimed:
            holds &= claimed[key] == parsed[key]
    return real, bool(holds)


def _canonical_tensor(obs: Observation, name: str, directions: int):
    """The canonical tensor a values claim names (``output``, ``layer<l>/<direction>/<h|c>``), or None."""
    if name == "output":
        return None if obs.output is None else np.asarray(obs.output)
    layer, direction, which = name.split("/")
    if obs.states is None:
        return None
    k = int(layer.removeprefix("layer")) * directions + (direction == "backward")
    if k >= len(obs.states) or (direction == "backward" and directions == 1):
        return None
    return np.asarray(obs.states[k][0 if which == "h" else 1])


# What a claim may say that a shape-only run cannot tell (numbers, calls compared, what the computation raised
# or warned of): such a claim is not asked in shape-only mode.
COMPUTED_CLAIM_FIELDS = ("values", "same_calls", "different_calls", "raises", "warns")


def check_claims(case: Case, obs: Observation, impl_id: str, shape_only: bool = False) -> Outcome | None:
    """Claims from documents, each true or false when run; a false claim must be recorded as such. In shape-only
    mode only the claims about shapes, structure and counts are asked (the others are counted apart)."""
    claims = [c for c in case.claims if c.applies_to(impl_id)]
    left = []
    if shape_only:
        left = [c for c in claims if any(getattr(c, f) is not None for f in COMPUTED_CLAIM_FIELDS)]
        claims = [c for c in claims if c not in left]
    if not claims:
        return None
    results = [_claim_verdict(c, obs, case.config.directions) for c in claims]
    verdict = worst(r["verdict"] for r in results)
    details = {"claims": results}
    if left:
        details["not_asked"] = f"{len(left)} claim(s) about computed values, calls or errors: not asked in shape-only mode"
    return Outcome(verdict == AGREE, details, verdict=verdict)


class EvaluationError(Exception):
    """The float64 reference (``phase`` "reference") or a check (``phase`` "checks") could not be
    computed for a run; ``cause`` is the exception that stopped it (a ``MemoryError``, say)."""

    WHAT = {"reference": "the float64 reference could not be computed",
            "checks": "the checks could not be computed"}

    def __init__(self, phase: str, cause: BaseException):
        super().__init__(f"{self.WHAT[phase]}: {type(cause).__name__}: {cause}")
        self.phase, self.cause = phase, cause


def check_accepts(case: Case, obs: Observation, refusal: str | None) -> Outcome | None:
    """Does the implementation accept what the canonical semantics accepts (zero sizes included), and
    refuse what it refuses (a wrong input or state)? None where both accept: the other checks speak."""
    rejected = obs.status == "rejected"
    if not rejected and refusal is None:
        return None
    info = obs.rejection or {}
    native = f"rejected: {info.get('type')}: {info.get('message')}" if rejected else "accepted"
    # Both refuse, maybe for different reasons (torch refuses input_size 0 before it sees the wrong states): no
    # evidence against a declared refusal, nor for a declared acceptance of what the canonical semantics refuses.
    return Outcome(rejected == (refusal is not None), {"canonical": f"rejects: {refusal}" if refusal else "accepts",
                                                       "native": native, "phase": info.get("phase")},
                   conclusive=not (rejected and refusal is not None))


def evaluate(case: Case, impl_id: str, device: str, obs: Observation, formula_name: str,
             divergences: list[Divergence], versions: dict | None = None,
             timeout: float | None = None, shape_only: bool = False) -> dict[str, dict]:
    """Run every check; return ``{check: {"verdict", "details", "divergence"}}``. ``versions`` (the
    run's package versions) select declarations scoped to framework releases; ``timeout`` (seconds)
    bounds the float64 reference. ``shape_only``: the observation is a shape-only run's (``Impl.run_shapes``):
    only ``SHAPE_CHECKS`` are asked, and no reference is computed. Raises :class:`EvaluationError` (and nothing
    else) when the reference or a check cannot be computed."""
    cfg = case.config
    deadline = None if timeout is None else time.monotonic() + timeout
    refusal, ref = reference.rejects(cfg), None
    try:
        if refusal is None and obs.status != "rejected" and not shape_only:
            ref = reference.forward(cfg, reference.make_input(cfg), reference.canonical_weights(cfg),
                                    reference.initial_states(cfg), deadline=deadline)
    except Exception as exc:   # noqa: BLE001 - MemoryError first of all
        raise EvaluationError("reference", exc) from exc
    try:
        return _judge(case, impl_id, device, obs, formula_name, divergences, versions, ref, refusal, shape_only)
    except Exception as exc:   # noqa: BLE001
        raise EvaluationError("checks", exc) from exc


def _judge(case, impl_id, device, obs, formula_name, divergences, versions, ref, refusal,
           shape_only: bool = False) -> dict[str, dict]:
    outcomes = dict.fromkeys(CHECKS)
    outcomes["accepts"] = check_accepts(case, obs, refusal)
    if outcomes["accepts"] is None and obs.status == "ok" and any(
            d.crash and d.applies(case, impl_id, device, "accepts", versions, "shape-only" if shape_only else "eager")
            for d in divergences):   # a declared crash that did not happen: the call was accepted, as canonically
        outcomes["accepts"] = Outcome(True, {"canonical": "accepts", "native": "accepted (no crash)", "phase": None})
    if shape_only and obs.status != "rejected":
        # Shape inference that accepts what the canonical semantics refuses is no answer to whether the call refuses
        # it (Keras's compute_output_shape never reads the features): the eager run's accepts and symbolic checks ask.
        outcomes["accepts"] = None
    outcomes["claims"] = check_claims(case, obs, impl_id, shape_only)
    outcomes["symbolic"] = check_symbolic(case, obs)
    if shape_only:          # the shapes and the count the framework inferred; no number was computed
        if refusal is None and obs.status != "rejected":
            outcomes.update(output_shape=check_output_shape(case, obs), state_shapes=check_state_shapes(case, obs),
                            dtype=check_dtype(case, obs), param_count=check_param_count(case, obs, formula_name))
    elif ref is not None:     # both accepted the call: every other check compares the results
        outcomes.update(_compare_results(case, obs, device, formula_name, ref))
    assert tuple(outcomes) == CHECKS
    return _verdicts(case, impl_id, device, versions, divergences, outcomes, "shape-only" if shape_only else "eager")


def _compare_results(case, obs, device, formula_name, ref) -> dict:
    random = reference.drawn_at_random(case.config)      # dropout in training: values are not comparable
    return {
        "output_shape": check_output_shape(case, obs),
        "state_shapes": check_state_shapes(case, obs),
        "state_order": check_state_order(case, obs),
        "dtype": check_dtype(case, obs),
        "param_count": check_param_count(case, obs, formula_name),
        "values": (Outcome(True, {"reason": random}, verdict=SKIPPED) if random
                   else check_values(case, obs, device, ref)),
        "padding": None if random else check_padding(case, obs),
    }


def crashed_verdicts(case: Case, impl_id: str, device: str, obs: Observation, divergences: list[Divergence],
                     versions: dict | None = None, mode: str = "eager") -> dict[str, dict]:
    """The checks of a run whose framework worker was killed by a signal while running the call (``obs.fault``
    kind ``signal``, not while starting): the ``accepts`` check, known-divergence, when a declaration with
    ``crash: true`` explains it; else none (the run stays an ``error``)."""
    fault = obs.fault or {}
    if fault.get("kind") != "signal" or fault.get("phase") == "start":
        return {}
    declared = [d for d in divergences if d.crash and d.applies(case, impl_id, device, "accepts", versions, mode)]
    if not declared:
        return {}
    refusal = reference.rejects(case.config)
    details = {"canonical": f"rejects: {refusal}" if refusal else "accepts",
               "native": f"crashed: the worker was killed by {fault.get('signal')}", "phase": "call"}
    return {"accepts": {"verdict": KNOWN, "details": details, "divergence": declared[0].to_dict()}}


def _verdicts(case, impl_id, device, versions, divergences, outcomes, mode: str = "eager") -> dict[str, dict]:
    results = {}
    for name, outcome in outcomes.items():
        if outcome is None:
            continue
        declared = [d for d in divergences if d.applies(case, impl_id, device, name, versions, mode)]
        if outcome.verdict is not None:
            verdict = outcome.verdict
        elif outcome.ok:          # an intermittent difference that did not show this time is no evidence
            verdict = STALE if outcome.conclusive and any(not d.intermittent for d in declared) else AGREE
        else:                     # a declared crash explains only a crash (crashed_verdicts)
            declared = [d for d in declared if not d.crash]
            verdict = KNOWN if declared and outcome.declarable else DIVERGE
        results[name] = {"verdict": verdict, "details": outcome.details,
                         "divergence": declared[0].to_dict() if declared and verdict != AGREE else None}
    return results
