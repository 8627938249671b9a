"""What one case file, one case and one run record may cost: the limits the loader enforces.

Hand-written files can be wrong in any way, so the loader bounds what a file can cost before
building it:

* a file is at most ``MAX_FILE_BYTES`` (1 MiB), UTF-8 (a BOM is allowed);
* one YAML document, nested at most ``MAX_DEPTH`` (50) levels, expanding to at most ``MAX_NODES``
  (100,000) nodes counted through aliases (an "alias bomb" is refused before it is built), and no
  alias inside the node it refers to;
* a case's matrix makes at most ``MAX_MATRIX`` (1,000) cases unless the case raises its own limit
  with ``max_cases: N``; a file makes at most ``MAX_FILE_CASES`` (10,000) cases in all;
* sizes have sane maxima (see ``CONFIG_FIELDS``), so a typo like ``hidden_size: 40960000`` is an
  error here rather than an out-of-memory later;
* what one case costs is bounded as a whole, too (:func:`case_cost`): the float64 elements the test
  process holds at once for one run (the canonical weights, the widest layer sequence four times
  over: the reference's input and output sequences, the input and the observation; the states; the
  step buffers) are at most ``MAX_CASE_COST`` (2**27: 1 GiB of float64), so that each field within its
  maximum cannot add up to a case that exhausts memory (64 layers of hidden_size 4096 would hold
  ~200 GB of weights); measured peaks are in ``reference.forward``'s docstring;
* strings that travel (into pytest node ids, the worker's environment, results and reports) are
  bounded: a case id, after matrix expansion, and a divergence id at most ``MAX_ID_CHARS`` (200)
  characters; every other string (descriptions, a claim's ``source``, ``says``, ``note`` and
  ``impl`` patterns, a divergence's ``reason``, ``link``, patterns and version specifiers) at most
  ``MAX_TEXT_CHARS`` (4,096). Lists copied into every run's record are bounded too: at most
  ``MAX_CLAIMS`` (16) claims per case, ``MAX_CLAIM_TENSORS`` (64) shapes in a claim's ``outputs``
  and roles in its ``roles``, ``MAX_CLAIM_DIMS`` (8) dimensions per shape, and ``MAX_LIST_ITEMS``
  (64) patterns in an ``impl``, ``cases`` or ``devices`` list, values of one ``when`` field or
  packages in ``versions`` (``lengths`` is bounded by ``batch``). A run record's ``reason`` and ``traceback``, which come from a
  framework, are cut to ``MAX_RECORD_TEXT`` (16,384) characters each, head and tail kept
  (:func:`clip_text`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .fields import Config

MAX_FILE_BYTES = 1 << 20       # pure-Python PyYAML parses about 3 s per MiB
MAX_DEPTH = 50                 # nesting levels (the case language needs 7)
MAX_NODES = 100_000            # YAML nodes, counted through aliases
MAX_MATRIX = 1000              # cases one matrix may make, unless the case sets max_cases
MAX_FILE_CASES = 10_000        # cases one file may make in all (and the most max_cases may allow)
MAX_SIZE = 4096                # input_size, hidden_size, proj_size, batch
MAX_TIMESTEPS = 10_000
MAX_LAYERS = 64
MAX_CALLS = 16                 # consecutive calls of one run (the field calls)
MAX_SEED = 2**32 - 1
MAX_CLAIM_INT = 2**63 - 1      # a claimed dimension or parameter count
MAX_CASE_COST = 2**27          # float64 elements one run holds in the test process (1 GiB), see case_cost
# Strings that travel: a case id goes into pytest's node id, which pytest puts in the environment
# (PYTEST_CURRENT_TEST; Linux refuses one string over 128 KiB), into results and reports.
MAX_ID_CHARS = 200             # a case id (after matrix expansion) or a divergence id
MAX_TEXT_CHARS = 4096          # descriptions, claim and divergence texts, patterns, version specifiers
MAX_RECORD_TEXT = 16 * 1024    # characters of a run record's reason and traceback (head and tail kept)
# Lists that are copied into every run's record (a case's claims with each of its runs, a divergence
# declaration with each check it explains), so that a matrix cannot multiply a long list into a
# results file larger than a report reads: the default set uses at most 3 claims per case, 3 tensors
# and 3 dimensions per claimed shape, and one pattern per list.
MAX_CLAIMS = 16                # claims in one case
MAX_WARNINGS = 32              # distinct warnings a run's record keeps
MAX_CLAIM_TENSORS = 64         # a claim's `outputs` shapes, and its `roles`
MAX_CLAIM_VALUES = 4096        # numbers in one claim's values
MAX_CLAIM_DIMS = 8             # dimensions of one claimed shape
MAX_LIST_ITEMS = 64            # patterns in an `impl`, `cases` or `devices` list; values of one `when`
                               # field; packages in `versions`



def clip_text(text: str, limit: int = MAX_RECORD_TEXT) -> str:
    """``text`` cut to at most ``limit`` characters: its head and its tail, with a line between them
    saying how many characters were cut (where a message starts and how a traceback ends both
    matter)."""
    if not isinstance(text, str) or len(text) <= limit:
        return text
    marker = f"\n[... {{:,}} of {len(text):,} characters cut here ...]\n"
    keep = max(0, limit - len(marker.format(len(text))))
    head = keep - keep // 2
    cut = len(text) - keep
    return text[:head] + marker.format(cut) + (text[len(text) - keep // 2:] if keep // 2 else "")


def case_cost(cfg: "Config") -> dict[str, int]:
    """What one run of ``cfg`` holds at once in the test process, in float64 elements, by part, and
    their ``total`` (checked against ``MAX_CASE_COST`` by the loader).

    * ``weights``: the canonical weights, 4H·(in + H') + 4H (bias) + H·P per layer and direction;
    * ``sequences``: 4·B·T·max(in, D·H'), the widest sequence a layer reads or writes, four times:
      the reference streams layer by layer and holds a layer's input and output sequences (sum,
      mul and ave: the input and both directions, at most 1.5 times the widest), the canonical
      input is there in the case's dtype too, and the observation's output comes back from the
      worker;
    * ``states``: every layer's and direction's final (h, c), B·(H + H'), the reference's and the
      observation's;
    * ``steps``: the reference's per-step buffers and temporaries, 4·B·4H.

    The checks compare in chunks (``checks.CHUNK_ELEMENTS``) and add no tensor-sized copies. Measured
    with tracemalloc (the observation, then the peak of ``checks.evaluate`` with the reference), a
    run holds 0.38 (the input widest: in=1024, H=8) to 0.99 (the weights dominate: H=512, 3 layers,
    B=4, T=10) of ``8 * total`` bytes, e.g. 316 MB of an 840 MB estimate for in=4096, H=8, B=16,
    T=400 with return_sequences (``tests/test_limits_memory.py`` checks seven shapes). At the
    limit the test process needs about 1 GiB for the run. The reference's time is not bounded here:
    64 bidirectional layers of H=32 with B=64, T=2000 (a quarter of the limit) took 123 s on a
    loaded 2-core machine, one (B, 4H) step at a time.
    """
    H = max(cfg.layer_hidden(l) for l in range(max(cfg.num_layers, 1)))   # sizes per layer: bounded by the widest
    Hp, D, B, T = cfg.proj_size or H, cfg.directions, cfg.batch, cfg.timesteps
    merged = D * Hp if cfg.merge_mode in ("concat", "none") else Hp
    per_layer = [D * (4 * H * (n_in + Hp) + (4 * H if cfg.bias else 0) + H * cfg.proj_size)
                 for n_in in (cfg.input_size, merged)]
    parts = {"weights": per_layer[0] + (cfg.num_layers - 1) * per_layer[1],
             "sequences": 4 * B * T * max(cfg.input_size, D * Hp),
             "states": 2 * cfg.num_layers * D * B * (H + Hp),
             "steps": 4 * B * 4 * H}
    parts["total"] = sum(parts.values())
    return parts


