#!/usr/bin/env python3
"""Writes tests/fixtures/metrics/reference.json: scikit-learn's and scipy's metric values.

Classification cases (random predictions, binary and multiclass, and degenerate ones: one class
only, all wrong, no positive prediction, a class that never occurs) are scored with sklearn's
accuracy_score, precision/recall/f1_score (average="binary" for two classes, "macro" always),
matthews_corrcoef and confusion_matrix, all with their default zero_division. Regression cases
(with ties, and a constant prediction) are scored with scipy's pearsonr and spearmanr and the mean
squared error. tests/train/metrics_test.cpp recomputes them and compares within 1e-12.

Needs scikit-learn and scipy (pip install scikit-learn scipy); only to regenerate the fixture.
Usage: python3 scripts/make_metrics_fixtures.py [--out tests/fixtures/metrics/reference.json]
"""
import argparse
import json
import math
import os
import warnings

import numpy as np
import scipy
import scipy.stats
import sklearn
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, matthews_corrcoef,
                             precision_score, recall_score)


def nan_to_none(x):
    return None if math.isnan(x) else float(x)


def classification_case(name, labels, predictions, num_classes):
    labels = [int(x) for x in labels]
    predictions = [int(x) for x in predictions]
    headline = "binary" if num_classes == 2 else "macro"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero-division warnings: the value (0) is what we test
        return {
            "name": name,
            "num_classes": num_classes,
            "labels": labels,
            "predictions": predictions,
            "expected": {
                "num_examples": len(labels),
                "accuracy": accuracy_score(labels, predictions),
                "precision": precision_score(labels, predictions, average=headline),
                "recall": recall_score(labels, predictions, average=headline),
                "f1": f1_score(labels, predictions, average=headline),
                "precision_macro": precision_score(labels, predictions, average="macro"),
                "recall_macro": recall_score(labels, predictions, average="macro"),
                "f1_macro": f1_score(labels, predictions, average="macro"),
                "matthews_correlation": matthews_corrcoef(labels, predictions),
                "confusion_matrix": confusion_matrix(labels, predictions,
                                                     labels=list(range(num_classes))).tolist(),
            },
        }


def regression_case(name, targets, predictions):
    # float32 values, as the model produces them; scored in float64 as scipy does.
    targets = np.asarray(targets, dtype=np.float32).astype(np.float64)
    predictions = np.asarray(predictions, dtype=np.float32).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
        pearson = scipy.stats.pearsonr(targets, predictions).statistic
        spearman = scipy.stats.spearmanr(targets, predictions).statistic
    return {
        "name": name,
        "targets": targets.tolist(),
        "predictions": predictions.tolist(),
        "expected": {
            "num_examples": len(targets),
            "pearson": nan_to_none(pearson),
            "spearman": nan_to_none(spearman),
            "mse": float(np.mean((predictions - targets) ** 2)),
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "metrics",
                                                      "reference.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(20261123)

    binary_labels = rng.integers(0, 2, 64)
    # A classifier biased towards the positive class: right on 85% of positives, 55% of negatives.
    right = rng.random(64) < np.where(binary_labels == 1, 0.85, 0.55)
    binary_predictions = np.where(right, binary_labels, 1 - binary_labels)
    multi_labels = rng.integers(0, 3, 90)
    multi_predictions = np.where(rng.random(90) < 0.6, multi_labels, rng.integers(0, 3, 90))
    # Five classes of which class 3 never occurs: sklearn's macro averages over the other four.
    absent_labels = rng.choice([0, 1, 2, 4], 40)
    absent_predictions = rng.choice([0, 1, 2, 4], 40)
    wrong_multi = rng.integers(0, 4, 30)

    classification = [
        classification_case("binary_random", binary_labels, binary_predictions, 2),
        classification_case("multiclass_random", multi_labels, multi_predictions, 3),
        classification_case("multiclass_absent_class", absent_labels, absent_predictions, 5),
        classification_case("one_class_only", [0] * 12, [0] * 12, 2),
        classification_case("one_class_positive_only", [1] * 9, [1] * 9, 2),
        classification_case("binary_all_wrong", binary_labels[:20], 1 - binary_labels[:20], 2),
        classification_case("multiclass_all_wrong", wrong_multi, (wrong_multi + 1) % 4, 4),
        classification_case("no_positive_predictions", binary_labels[:25], [0] * 25, 2),
        classification_case("single_example", [2], [2], 3),
    ]

    targets = rng.uniform(0, 5, 50)
    noisy = targets + rng.normal(0, 1.0, 50)
    regression = [
        regression_case("correlated", targets, noisy),
        # Rounded to half points, as STS-B labels are: many ties for the ranks.
        regression_case("ties", np.round(targets * 2) / 2, np.round(noisy * 2) / 2),
        regression_case("anticorrelated", targets[:10], -targets[:10]),
        regression_case("constant_prediction", targets[:8], [2.5] * 8),
    ]

    fixture = {
        "generator": "scripts/make_metrics_fixtures.py",
        "sklearn_version": sklearn.__version__,
        "scipy_version": scipy.__version__,
        "classification": classification,
        "regression": regression,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(f"wrote {args.out}: {len(classification)} classification, {len(regression)} regression cases")


if __name__ == "__main__":
    main()
