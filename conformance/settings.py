"""The suite's environment variables, read and checked in one place.

A value the suite cannot use is refused before any run (the plugin makes :class:`SettingError` a
usage error), never found out in a worker halfway through a session:

* ``CONFORMANCE_RELEASE_EVERY`` (default 100): every this many runs a worker frees what its
  framework keeps from earlier runs (``Impl.release``); a whole number >= 1;
* ``CONFORMANCE_JAX_CACHE``: JAX's persistent compilation cache directory, or ``off``
  (:mod:`conformance.impls.jax_cache`); not a file;
* ``CONFORMANCE_TORCH_EXPORT`` (default off): ``1``/``on`` has the torch adapter ask ``torch.export`` with
  ``Dim``s which dimensions torch can leave unknown (the symbolic check), at seconds a construct kind;
* ``CONFORMANCE_FAULT``: fault injection for the suite's own tests (``KIND:PATTERN;...``, see
  :mod:`conformance.worker`); every kind must be one the worker knows. Left set, it is recorded in
  results.json (``environment.fault_injection``) and said at the end of the session.
"""

from __future__ import annotations

import os

RUN_FAULTS = ("segfault", "abort", "crash", "exit", "sysexit", "memory", "raise", "hang", "kill-runner")
START_FAULTS = ("start-crash", "start-hang", "start-raise")
MAPPING_FAULTS = ("swap-gates",)
FAULT_KINDS = (*RUN_FAULTS, *START_FAULTS, *MAPPING_FAULTS)


class SettingError(ValueError):
    """An environment value the suite cannot use; the message names the variable and the value."""


def release_every(environ=os.environ) -> int:
    text = environ.get("CONFORMANCE_RELEASE_EVERY", "").strip() or "100"      # set but empty: the default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingError(f"CONFORMANCE_RELEASE_EVERY={text!r}: must be a whole number of runs >= 1 (default 100)")
    return value


def torch_export(environ=os.environ) -> bool:
    text = environ.get("CONFORMANCE_TORCH_EXPORT", "").strip().lower()
    if text not in ("", "0", "off", "1", "on"):
        raise SettingError(f"CONFORMANCE_TORCH_EXPORT={text!r}: must be 1 or on (ask torch.export), 0 or off (default)")
    return text in ("1", "on")


def faults(environ=os.environ) -> list[tuple[str, str]]:
    """``CONFORMANCE_FAULT`` as ``[(kind, pattern), ...]``, in order (the first that matches wins)."""
    text = environ.get("CONFORMANCE_FAULT", "")
    out = []
    for item in filter(None, (f.strip() for f in text.split(";"))):
        kind, _, pattern = item.partition(":")
        if kind not in FAULT_KINDS:
            raise SettingError(f"CONFORMANCE_FAULT={text!r}: {kind!r} is not a fault kind; known: "
                               f"{', '.join(FAULT_KINDS)}")
        out.append((kind, pattern))
    return out


def check(environ=os.environ) -> dict:
    """Every setting above, checked; returns what results.json records of them."""
    release_every(environ)
    faults(environ)
    exported = torch_export(environ)
    cache = environ.get("CONFORMANCE_JAX_CACHE", "")
    if cache and cache.lower() != "off" and os.path.lexists(cache) and not os.path.isdir(cache):
        raise SettingError(f"CONFORMANCE_JAX_CACHE={cache!r}: is not a directory (give a directory, or off)")
    text = environ.get("CONFORMANCE_FAULT", "")
    return {**({"fault_injection": text} if text.strip() else {}), **({"torch_export": True} if exported else {})}
