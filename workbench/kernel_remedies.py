"""Explain a deployed-vs-exact gap: name this CPU's integer path and measure the known remedies on this model.

Each remedy is a real deployed run (plain onnxruntime session, full optimizations, this CPU) on the same
evaluation samples and batches as the analysis: re-quantizing variants reuse the session's calibration
histograms (a quantize each, no calibration), session-option variants reuse the INT8 model, and all of them
share one pass over the data with one FP32 run per batch. Remedies: onnxruntime's u8 x u8 path
(``session.x64quantprecision``), 7-bit weights (``reduce_range``), s8 activations, and, for reference, the
Q/DQ math left unfused (``session.disable_quant_qdq``, which gives up the integer kernels).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from analyzers.diff_types import OutputResult
from analyzers.kernel_gap import KernelGap, Remedy, gap_figure, name_cause, pick_best, recovered_share
from analyzers.output_kinds import OutputKind
from analyzers.output_metrics import OutputAccumulator
from backends.integer_path import integer_path
from backends.runner import SessionConfig, build_session
from backends.tasks import NullTask, Task, scaled

from .errors import WorkbenchError
from .recipe import Recipe

SESSION_OPTION_HOW = ('session option {key} = "{value}" on the INT8 session: in Python '
                      'so.add_session_config_entry("{key}", "{value}") on its SessionOptions (C++: '
                      'AddConfigEntry); in qwb: --session-option {key}={value} (analyze, quantize, bench)')


@dataclass
class Candidate:
    """One remedy to measure: a recipe change (re-quantize) and/or session options on the INT8 session."""

    name: str
    how: str
    recipe: Recipe | None = None  # None: the analysed INT8 model
    entries: dict = field(default_factory=dict)
    int8_kernels: bool = True
    note: str = ""


def candidates(recipe: Recipe, x86: bool, entries: dict | None = None) -> list[Candidate]:
    """The remedies that apply to ``recipe`` on this architecture (those the recipe or the session options
    ``entries`` already use are left out)."""
    s = recipe.settings
    entries = entries or {}
    out = []
    if x86 and entries.get("session.x64quantprecision") != "1":
        out.append(Candidate("x64quantprecision", SESSION_OPTION_HOW.format(key="session.x64quantprecision", value=1),
                             entries={"session.x64quantprecision": "1"},
                             note="onnxruntime's u8 x u8 path: 32-bit accumulation on x86 CPUs without VNNI"))
    if not s.reduce_range:
        out.append(Candidate("reduce_range", "in the recipe's [global] set reduce_range = true (7-bit weights), "
                             "then re-quantize", replace(recipe, settings=replace(s, reduce_range=True)),
                             note="7-bit weights: no pair of u8 x s8 products can overflow 16 bits"))
    if not s.activation_type.startswith("s"):
        out.append(Candidate("s8_activations", "in the recipe's [global] set activation_type = \"s8\", then "
                             "re-quantize", replace(recipe, settings=replace(s, activation_type="s8")),
                             note="other integer kernels (s8 x s8); often slower on x86"))
    if entries.get("session.disable_quant_qdq") != "1":
        out.append(Candidate("disable_quant_qdq", SESSION_OPTION_HOW.format(key="session.disable_quant_qdq", value=1),
                             entries={"session.disable_quant_qdq": "1"}, int8_kernels=False,
                             note="reference only: Q/DQ runs unfused in float, so INT8 gives no speed-up"))
    return out


def parse_session_options(items: list[str] | None) -> dict:
    """``KEY=VALUE`` strings (``--session-option``) to a dict of onnxruntime session config entries."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise WorkbenchError(f"--session-option needs KEY=VALUE, not {item!r}",
                                 "e.g. --session-option session.x64quantprecision=1")
        out[key.strip()] = value.strip()
    return out


def path_only() -> KernelGap:
    """The kernel entry of an analysis with one mode only: this CPU's integer path, no gap measured."""
    return KernelGap(integer_path())


def explain_gap(session, recipe: Recipe, int8_path: str | Path, kinds: dict[str, OutputKind], batched: bool,
                samples: int, batch_size: int, exact: list[OutputResult], deployed: list[OutputResult],
                measure: bool = True, entries: dict | None = None, task: Task | None = None) -> KernelGap:
    """The kernel gap of one analysis: this CPU's integer path, the primary figure in both modes, and, when
    deployed is significantly worse than exact and ``measure``, every remedy measured (best first)."""
    task = task or NullTask()
    gap = _explain(session, recipe, int8_path, kinds, batched, samples, batch_size, exact, deployed, measure,
                   entries, task)
    task.report(1.0, "kernel gap explained" if gap.significant else "no kernel gap")
    return gap


def _explain(session, recipe, int8_path, kinds, batched, samples, batch_size, exact, deployed, measure, entries,
             task) -> KernelGap:
    path = integer_path()
    gap = KernelGap(path)
    fig = gap_figure(exact, deployed, samples)
    if fig is None:
        return gap
    gap.output, gap.metric_name, gap.exact, gap.deployed, gap.significant = fig
    if not gap.significant:
        return gap
    gap.cause, gap.cause_message = name_cause(path)
    if not measure:
        gap.skipped = "remedies not measured (--no-remedies): run qwb analyze without it to measure them"
        return gap
    cands = candidates(recipe, path is not None and path.arch != "aarch64", entries)
    values = measure_candidates(session, int8_path, kinds, batched, samples, batch_size, cands, gap.output,
                                entries or {}, task)
    for c in cands:
        v = values.get(c.name)
        value = None if v is None else getattr(v, gap.metric_name)
        gap.remedies.append(Remedy(c.name, c.how, gap.metric_name, value,
                                   recovered_share(gap.exact, gap.deployed, value), c.int8_kernels, c.note))
    gap.remedies.sort(key=lambda r: (not r.int8_kernels, -(r.value if r.value is not None else float("-inf"))))
    gap.best = pick_best(gap)
    return gap


def measure_candidates(session, int8_path, kinds, batched, samples, batch_size, cands: list[Candidate],
                       output: str, entries: dict, task: Task | None = None) -> dict[str, OutputResult]:
    """Deployed figures of ``output`` for every candidate: quantize the recipe variants (calibration reused),
    then one pass over the first ``samples`` evaluation samples with every variant's INT8 session."""
    task = task or NullTask()
    requant = [c for c in cands if c.recipe is not None]
    models = {}
    for k, c in enumerate(requant):
        task.check()
        task.report(0.5 * k / len(requant), f"quantizing with the {c.name} remedy")
        try:
            models[c.name] = str(session.quantize(recipe=c.recipe, task=scaled(task, 0.5 * k / len(requant),
                                                                               0.5 * (k + 1) / len(requant))).path)
        except WorkbenchError as e:  # a remedy onnxruntime cannot apply to this model is a finding, not a failure
            c.note = f"could not quantize: {e.message}"
    fp32 = build_session(SessionConfig.for_purpose("deployed", str(session.prepared.path),
                                                   config_entries=dict(entries)))
    int8 = {}
    for c in cands:
        if c.recipe is not None and c.name not in models:
            continue
        try:
            int8[c.name] = build_session(SessionConfig.for_purpose("deployed", models.get(c.name, str(int8_path)),
                                                                   config_entries=dict(entries, **c.entries)))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types; the other remedies go on
            c.note = f"onnxruntime could not run it: {type(e).__name__}: {str(e)[:200]}"
    inputs = {i.name for i in fp32.get_inputs()}
    acc = {name: OutputAccumulator(kinds[output], batched) for name in int8}
    data, labels = session.eval_data, session.eval_data.labels
    for start, stop, feed in data.batches(limit=samples, batch_size=batch_size):
        task.check()
        feed = {k: v for k, v in feed.items() if k in inputs}
        x = fp32.run([output], feed)[0]
        for name, sess in int8.items():
            acc[name].update(x, sess.run([output], feed)[0], None if labels is None else labels[start:stop])
        task.report(0.5 + 0.5 * stop / samples, "measuring the kernel remedies")
    return {name: a.result() for name, a in acc.items()}
