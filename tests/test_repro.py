"""Repro snippets: ``impl.repro(cfg)`` is a self-contained native program that, run on the real
framework, prints the same native return shapes and parameter count as the suite's run of ``cfg``.

Each implementation's snippets run in one subprocess (importing TensorFlow or JAX costs seconds),
started for all implementations at once and compared with the real observation from the worker pool.
"""

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conformance.impls import get
from conformance.spec import Config

# input 5, hidden 4, batch 2, timesteps 3: every axis has its own size, so a swapped axis shows.
CONFIGS = {
    "torch": {
        "uni": Config(5, 4),
        "bi-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, return_state=True),
        "sequences-state": Config(5, 4, return_sequences=True, return_state=True),
        "time-major-bi": Config(5, 4, bidirectional=True, layout="time_major", return_sequences=True),
        "unbatched-2layer-state": Config(5, 4, num_layers=2, layout="unbatched", batch=1, return_state=True),
        "proj-bi-state": Config(5, 6, bidirectional=True, proj_size=4, return_state=True),
        "float64-nobias": Config(5, 4, bias=False, dtype="float64"),
        "cells-2layer-sequences": Config(5, 4, num_layers=2, cell_api=True, return_sequences=True),
        "cells-time-major-initial": Config(5, 4, cell_api=True, layout="time_major", initial_state="random"),
        "cells-sizes-initial": Config(5, (4, 6), num_layers=2, cell_api=True, initial_state="random",
                                      return_sequences=True),
        "unbatched-batch-first": Config(5, 4, layout="unbatched", batch=1, initial_state="random",
                                        native={"torch": {"batch_first": True}}),
        "refused-h-too-wide": Config(5, 4, initial_state="random", feed_state_hidden=7, feed_state_only="h"),
        "refused-states-of-3-layers": Config(5, 4, num_layers=2, initial_state="random", feed_state_layers=3),
        "refused-cells-wrong-features": Config(5, 4, cell_api=True, feed_input_size=6),
    },
    "keras-tensorflow": {
        "uni": Config(5, 4),
        "sequences": Config(5, 4, return_sequences=True),
        "state": Config(5, 4, return_state=True),
        "bi-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, return_state=True),
        "3layer-sequences": Config(5, 4, num_layers=3, return_sequences=True),
        "bi-sum-sequences-state": Config(5, 4, bidirectional=True, merge_mode="sum", return_sequences=True,
                                         return_state=True),
        "bi-float64-nobias-state": Config(5, 4, bidirectional=True, bias=False, dtype="float64",
                                          return_state=True),
        "cells-bi-state": Config(5, 4, bidirectional=True, cell_api=True, return_state=True),
        "merge-none-sequences-state": Config(5, 4, bidirectional=True, merge_mode="none", return_sequences=True,
                                             return_state=True),
        "sizes-bi-state-initial": Config(5, (4, 6), num_layers=2, bidirectional=True, return_state=True,
                                         initial_state="random"),
        "stacked-cells-state-initial": Config(5, (4, 6), num_layers=2, cell_api=True, stacked_cells=True,
                                              return_state=True, initial_state="random"),
        "refused-c-of-another-batch": Config(5, 4, initial_state="ones", feed_state_batch=3, feed_state_only="c"),
    },
    "flax-linen": {
        "unbatched": Config(5, 4, layout="unbatched", batch=1),
        "bi": Config(5, 4, bidirectional=True),
        "bi-ave-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, merge_mode="ave", return_state=True),
        "time-major-sequences": Config(5, 4, layout="time_major", return_sequences=True),
        "cells-2layer-initial": Config(5, 4, num_layers=2, cell_api=True, initial_state="random"),
        "sizes-bi-initial-state": Config(5, (4, 6, 3), num_layers=3, bidirectional=True, initial_state="ones",
                                         return_state=True),
        "merge-none-sequences-state": Config(5, 4, bidirectional=True, merge_mode="none", return_sequences=True,
                                             return_state=True),
        "batch-axes-lengths-initial": Config(5, 4, batch=4, batch_shape=(2, 2), lengths=(3, 1, 2, 3),
                                             initial_state="random", return_state=True),
        "refused-wrong-features-2layer": Config(5, 4, num_layers=2, feed_input_size=6),
        "refused-h-too-wide": Config(5, 4, initial_state="zeros", feed_state_hidden=7, feed_state_only="h"),
    },
    "flax-nnx": {
        "sizes-state-initial": Config(5, (4, 6), num_layers=2, initial_state="random", return_state=True),
        "batch-axes-bi-initial": Config(5, 4, batch=6, batch_shape=(2, 3), bidirectional=True, initial_state="ones"),
    },
    "onnxruntime": {
        "uni": Config(5, 4),
        "bi-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, return_state=True),
        "time-major-lengths-initial": Config(5, 4, layout="time_major", lengths=(3, 1), initial_state="random"),
        "reverse-nobias-relu": Config(5, 4, bias=False, go_backwards=True, activation="relu"),
        "refused-float64": Config(5, 4, dtype="float64"),
    },
    "onnx-reference": {
        "uni": Config(5, 4),
        "sizes-2layer-sequences": Config(5, (4, 6), num_layers=2, return_sequences=True),
        "bi-float64-initial": Config(5, 4, bidirectional=True, dtype="float64", initial_state="random"),
    },
    "onnx-export-torchscript": {
        "bi-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, return_state=True),
        "time-major-lengths-initial": Config(5, 4, layout="time_major", lengths=(3, 1), initial_state="random"),
        "refused-proj": Config(5, 4, proj_size=2),
    },
    "onnx-export-torch": {
        "uni-initial": Config(5, 4, initial_state="random"),
        "refused-lengths": Config(5, 4, lengths=(3, 1)),
    },
    "onnx-export-keras-tensorflow": {
        "bi-2layer-state": Config(5, 4, num_layers=2, bidirectional=True, return_state=True),
        "lengths-initial-sequences": Config(5, 4, lengths=(3, 1), initial_state="random", return_sequences=True),
    },
    "onnx-export-keras-torch": {
        "uni": Config(5, 4),
        "backwards-2layer-state": Config(5, 4, num_layers=2, go_backwards=True, return_state=True),
    },
}
# "refused-*": configurations the framework refuses (a wrong input or state): the snippet must raise as the run did
RUNS = [(impl_id, name, cfg) for impl_id, cfgs in CONFIGS.items() for name, cfg in cfgs.items()
        if not name.startswith("refused-")]
REFUSED = [(impl_id, name, cfg) for impl_id, cfgs in CONFIGS.items() for name, cfg in cfgs.items()
           if name.startswith("refused-")]
RUN_IDS = [f"{impl_id}-{name}" for impl_id, name, _ in RUNS]
FRAMEWORKS = ("torch", "tensorflow", "jax", "jaxlib", "flax", "keras", "onnx", "onnxruntime", "onnxscript", "tf2onnx")
from conformance.explore.confirm import DRIVER, MARKER, RAISED  # the driver explore confirms findings with


class SnippetRuns:
    """One subprocess per implementation running all its snippets; started together, read on demand."""

    def __init__(self, tmp_path):
        self.procs, self.paths, self.outputs = {}, {}, {}
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER)
        for impl_id, cfgs in CONFIGS.items():
            impl = get(impl_id)
            if impl.missing():
                continue
            paths = []
            for name, cfg in cfgs.items():
                path = tmp_path / f"{impl_id}-{name}.py"
                path.write_text(impl.repro(cfg))
                paths.append(str(path))
            self.paths[impl_id] = paths
            env = {**os.environ, **impl.env}
            self.procs[impl_id] = subprocess.Popen([sys.executable, str(driver), *paths], cwd=tmp_path, env=env,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def output(self, impl_id: str, name: str) -> str:
        """What the snippet for (impl_id, name) printed."""
        if impl_id not in self.outputs:
            try:
                out, err = self.procs[impl_id].communicate(timeout=120)
            except subprocess.TimeoutExpired:
                self.procs[impl_id].kill()
                out, err = self.procs[impl_id].communicate()
            chunks, current = {}, None
            for line in out.splitlines():
                if line.startswith(MARKER):
                    current = line[len(MARKER):].strip()
                    chunks[current] = []
                elif current is not None:
                    chunks[current].append(line)
            self.outputs[impl_id] = ({p: "\n".join(lines) for p, lines in chunks.items()}, err)
        chunks, err = self.outputs[impl_id]
        path = str(self.paths[impl_id][list(CONFIGS[impl_id]).index(name)])
        assert path in chunks, f"the driver did not reach {path}; stderr:\n{err[-3000:]}"
        return chunks[path]

    def close(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def parse(printed: str) -> tuple[list[tuple[str, tuple]], int]:
    """Shape lines ``<path> (<dims>)`` and the final ``params <count>`` line."""
    shapes, count = [], None
    for line in printed.splitlines():
        label, _, value = line.partition(" ")
        if label == "params":
            count = int(value)
        else:
            shapes.append((label, ast.literal_eval(value)))
    return shapes, count


@pytest.fixture(scope="module")
def snippets(tmp_path_factory):
    runs = SnippetRuns(tmp_path_factory.mktemp("repro"))
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def observe(pool):
    cache = {}

    def observe(impl_id: str, name: str, cfg: Config):
        if (impl_id, name) not in cache:
            cache[impl_id, name] = pool.run(impl_id, f"repro-{name}", cfg, "cpu")
        obs = cache[impl_id, name]
        assert obs.status == ("rejected" if name.startswith("refused-") else "ok"), f"{obs.reason}\n{obs.traceback}"
        return obs
    return observe


def skip_if_missing(impl_id: str) -> None:
    reason = get(impl_id).missing()
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("impl_id, name, cfg", RUNS, ids=RUN_IDS)
def test_snippet_prints_the_native_return_shapes_in_native_order(impl_id, name, cfg, snippets, observe):
    skip_if_missing(impl_id)
    obs = observe(impl_id, name, cfg)            # the snippets run meanwhile
    printed = snippets.output(impl_id, name)
    expected = [("out" + r["path"], tuple(r["shape"])) for r in obs.returns if r["top"]]
    assert parse(printed)[0] == expected, f"snippet printed:\n{printed}\n\nsnippet:\n{get(impl_id).repro(cfg)}"


@pytest.mark.parametrize("impl_id, name, cfg", RUNS, ids=RUN_IDS)
def test_snippet_prints_the_native_param_count(impl_id, name, cfg, snippets, observe):
    skip_if_missing(impl_id)
    obs = observe(impl_id, name, cfg)
    printed = snippets.output(impl_id, name)
    assert parse(printed)[1] == obs.param_count, f"snippet printed:\n{printed}"


@pytest.mark.parametrize("impl_id, name, cfg", REFUSED, ids=[f"{i}-{n}" for i, n, _ in REFUSED])
def test_snippet_of_a_refused_configuration_raises_what_the_run_raised(impl_id, name, cfg, snippets, observe):
    skip_if_missing(impl_id)
    obs = observe(impl_id, name, cfg)
    printed = snippets.output(impl_id, name)
    raised = [line[len(RAISED):].strip() for line in printed.splitlines() if line.startswith(RAISED)]
    assert raised == [obs.rejection["type"]], (
        f"the run raised {obs.rejection['type']}: {obs.rejection['message'][:300]}\nthe snippet printed:\n{printed}")


def test_repro_imports_no_framework():
    configs = {impl_id: [cfg.to_dict() for cfg in cfgs.values()] for impl_id, cfgs in CONFIGS.items()}
    code = textwrap.dedent(f"""
        import json, sys
        for mod in {FRAMEWORKS!r}:
            sys.modules[mod] = None          # any import of it raises ImportError
        from conformance.impls import get
        from conformance.spec import Config
        n = 0
        for impl_id, cfgs in json.loads(sys.argv[1]).items():
            for cfg in cfgs:
                assert get(impl_id).repro(Config(**cfg)).strip()
                n += 1
        print("made", n)
    """)
    result = subprocess.run([sys.executable, "-c", code, json.dumps(configs)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["made", str(len(RUNS) + len(REFUSED))]


@pytest.mark.parametrize("impl_id", list(CONFIGS))
def test_snippet_is_self_contained(impl_id):
    for cfg in CONFIGS[impl_id].values():
        snippet = get(impl_id).repro(cfg)
        assert "conformance" not in snippet
        # the only functions a snippet defines: the hand loop's module, the module a torch.onnx exporter exports
        assert "def " not in snippet or (cfg.cell_api and "class ByHand(" in snippet) or (
            impl_id in ("onnx-export-torch", "onnx-export-torchscript") and "class Exported(torch.nn.Module)" in snippet)
        compile(snippet, "<repro>", "exec")


def test_keras_snippet_selects_its_backend_before_importing_keras():
    snippet = get("keras-tensorflow").repro(Config(5, 4)).splitlines()
    assert snippet[:3] == ["import os", 'os.environ["KERAS_BACKEND"] = "tensorflow"', "import keras"]


@pytest.mark.parametrize("impl_id, cfg", [
    ("torch", Config(5, 4, bidirectional=True, merge_mode="sum")),
    ("keras-tensorflow", Config(5, 4, layout="time_major")),
    ("flax-linen", Config(5, 4, bias=False)),
])
def test_repro_of_an_unsupported_configuration_raises_with_the_reason(impl_id, cfg):
    impl = get(impl_id)
    with pytest.raises(ValueError) as info:
        impl.repro(cfg)
    assert str(info.value) == impl.unsupported(cfg)
