"""NNCF's side of benchmarks/compare_nncf.py: runs inside the benchmark's own NNCF venv (never the project's), so
it imports only numpy, onnx, onnxruntime and nncf, nothing of the project.

    <nncf-venv>/bin/python benchmarks/nncf_child.py JOB.json

JOB.json names the FP32 model, the calibration and validation .npz files (one array per input, sample axis first),
the metric, computed as `qwb tune` measures it (top1_agreement: the share of samples whose FP32 and INT8 top-1
class agree; cosine: the cosine of all FP32 and all INT8 output values together, the figure `--target cosine>=X`
reads for a classifier output), and max_drop; the child writes the quantized model and RESULT.json
(validation-function calls, samples they ran, the metric NNCF reached on the validation data, seconds).
"""

import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def _session(model: onnx.ModelProto, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads  # all optimizations: the deployed kernels, as `qwb tune` runs candidates
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _samples(path: str) -> list[dict]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "labels"}
    n = len(next(iter(arrays.values())))
    return [{k: v[i:i + 1] for k, v in arrays.items()} for i in range(n)]


def main(job_path: str) -> None:
    import nncf  # noqa: PLC0415 - only this venv has it

    job = json.loads(open(job_path).read())
    model = onnx.load(job["model"])
    calib = _samples(job["calib"])
    val = _samples(job["eval"])
    fp32 = _session(model, job["threads"])
    out_name = fp32.get_outputs()[0].name
    refs = [fp32.run([out_name], s)[0] for s in val]  # FP32 outputs per validation sample
    items = list(zip(val, refs))
    stats = {"calls": 0, "samples": 0, "seconds": 0.0}

    def validate(m: onnx.ModelProto, data) -> tuple[float, list[float]]:
        """The target's metric against FP32; per-sample values too, so NNCF runs in its metric mode (it ranks
        groups by this metric on its ranking subset, not by its own output distance)."""
        t = time.perf_counter()
        sess = _session(m, job["threads"])
        name = sess.get_outputs()[0].name
        pairs = [(r.astype(np.float64).reshape(-1), sess.run([name], x)[0].astype(np.float64).reshape(-1))
                 for x, r in data]
        if job.get("metric", "top1_agreement") == "top1_agreement":
            per = [float(a.argmax() == b.argmax()) for a, b in pairs]
            metric = float(np.mean(per))
        else:  # cosine over every value of every sample
            dot = sum(float(a @ b) for a, b in pairs)
            na, nb = sum(float(a @ a) for a, _ in pairs), sum(float(b @ b) for _, b in pairs)
            metric = dot / np.sqrt(na * nb) if na * nb > 0 else float(na == nb)
            per = [float(a @ b / np.sqrt((a @ a) * (b @ b))) if (a @ a) * (b @ b) > 0 else 0.0 for a, b in pairs]
        stats["calls"] += 1
        stats["samples"] += len(per)
        stats["seconds"] += time.perf_counter() - t
        return metric, per

    t0 = time.perf_counter()
    q = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calib), nncf.Dataset(items, lambda it: it[0]), validate,
        max_drop=job["max_drop"], drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib))
    seconds = time.perf_counter() - t0
    onnx.save(q, job["output"])
    reached, _ = validate(q, items)
    stats["calls"] -= 1  # that last check is ours, not NNCF's
    stats["samples"] -= len(items)
    json.dump({"seconds": seconds, "validation_calls": stats["calls"], "validation_samples": stats["samples"],
               "validation_seconds": stats["seconds"], "val_metric": reached, "nncf": nncf.__version__,
               "onnxruntime": ort.__version__}, open(job["result"], "w"), indent=2)


if __name__ == "__main__":
    main(sys.argv[1])
