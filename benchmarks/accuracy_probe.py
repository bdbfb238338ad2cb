"""How well do a trained SAEH run's heads classify? Accuracy per split and per head.

    python benchmarks/accuracy_probe.py runs/r6/fast-featcls1-48b-seed0 [RUN ...]

The mAP of the recipes follows their accuracy closely (docs/results.md), so
this asks where accuracy is lost: in the backbone or in the 48-bit code the
classifier reads. Per run and split (`val`, the 1,000 images model selection
sees; `query`, the 10,000 test images) it prints the accuracy of the code
classifier on the relaxed code as training ends (tanh(beta h), beta at its final
value) and on sign(h), and, for a run trained with
`method.params.lambda_feature_cls`, of the classifier on the backbone feature.
Features come from the run's own encoding (flip-averaged where its config says
so); h is the hash layer applied to them in float32 (the encoder applies it in
bfloat16 where its config says so, so sign(h) can differ from an indexed bit
where h is near 0, and accuracies from the trainer's bf16 validation by a few
images in a thousand). Single-label data sets only.
"""

from __future__ import annotations

import json

import torch
from bench_options import probed_runs

from hashsearch import api
from hashsearch.methods.saeh import SAEH
from hashsearch.run import load_run


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return round((logits.argmax(dim=1) == labels).float().mean().item(), 4)


@torch.no_grad()
def main() -> None:
    for run_dir in probed_runs(__doc__):
        run = load_run(run_dir)
        model = run.model
        if not isinstance(model, SAEH):
            raise SystemExit(f"{run_dir}: a {run.meta['method']} run; give SAEH runs")
        model.progress = 1.0  # the relaxation as training ended
        for split in ("val", "query"):
            encoded, _ = api.encode_split(run, split)
            feature = torch.from_numpy(encoded.features)
            labels = torch.from_numpy(encoded.labels)
            if labels.ndim != 1:
                raise SystemExit(f"{run_dir}: multi-label data; the probe scores one label")
            h = model.encoder.hash_layer(feature)
            figures = {
                "code_relaxed": accuracy(model.classifier(model.relaxed_code(h)), labels),
                "code_sign": accuracy(model.classifier(torch.sign(h)), labels),
            }
            feature_classifier = getattr(model, "feature_classifier", None)
            if feature_classifier is not None:
                figures["feature"] = accuracy(feature_classifier(feature), labels)
            print(json.dumps({"run": str(run_dir), "split": split, **figures}))


if __name__ == "__main__":
    main()
