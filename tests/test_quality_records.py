"""benchmarks/quality.py's record file: one record per run and machine, so a rerun
replaces its own record and a run on another machine adds one."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def quality(load_benchmark):
    return load_benchmark("quality")


def record(seed: int, family_model: str | None, mAP: float) -> dict:
    return {
        "preset": "fast",
        "variant": "",
        "bits": 48,
        "seed": seed,
        "rerank": "qe-all",
        "candidates": 4000,
        "two_stage_map_all": mAP,
        "environment": {"cpu": "AMD EPYC", "cpu_family_model": family_model},
    }


def test_records_of_one_model_name_on_two_cpu_generations_stay_apart(quality, tmp_path):
    path = tmp_path / "records.json"
    quality.append_record(path, record(0, "family 25 model 17", 0.88))
    quality.append_record(path, record(0, "family 26 model 2", 0.89))
    quality.append_record(path, record(1, "family 26 model 2", 0.87))
    quality.append_record(path, record(0, "family 26 model 2", 0.90))  # a rerun replaces
    kept = [
        (r["seed"], r["environment"]["cpu_family_model"], r["two_stage_map_all"])
        for r in json.loads(path.read_text())
    ]
    assert kept == [
        (0, "family 25 model 17", 0.88),
        (1, "family 26 model 2", 0.87),
        (0, "family 26 model 2", 0.90),
    ]
