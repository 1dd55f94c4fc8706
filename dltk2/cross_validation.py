"""k-fold cross-validation by patient: the folds, each fold's split, and metrics on out-of-fold predictions.

nnU-Net's results rest on five folds split by patient and on metrics computed on predictions each
case got from the one model that never saw it. :func:`assign_folds` gives every row a fold so that a
patient's rows share one (scikit-learn's ``StratifiedGroupKFold``, shuffled by a seed; stratified by
class where there are classes), :func:`fold_split` one fold's training and validation rows,
:func:`out_of_fold` joins the folds' validation predictions and checks each case was predicted exactly
once, and :func:`summarise_folds` gives the cross-validated metrics: pooled over every case, and the
mean and spread over folds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from dltk2.errors import DataError


def assign_folds(groups: Sequence, k: int, labels: Sequence | None = None, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) of every row: one patient's rows in one fold, classes spread evenly where given.

    Args:
        groups: The patient (or subject) of each row.
        k: Number of folds (>= 2).
        labels: Each row's class, to stratify by (classification); None: folds of even size only.
        seed: Shuffles which patients go together; the same seed and rows give the same folds.

    Raises:
        DataError: Fewer patients than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray([str(g) for g in groups])
    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    if len(np.unique(groups)) < k:
        raise DataError(f"{len(np.unique(groups))} patients cannot make {k} folds")
    strata = np.zeros(len(groups), int) if labels is None else pd.factorize(np.asarray(labels).astype(str))[0]
    folds = np.full(len(groups), -1, int)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(groups)), strata, groups)):
        folds[held_out] = fold
    return folds


def fold_split(table: pd.DataFrame, fold: int, k: int, group_column: str, label_column: str | None = None,
               seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fold ``fold``'s ``(training, validation)`` rows of ``table`` (see :func:`assign_folds`).

    Raises:
        ValueError: ``fold`` not in 0..k-1.
    """
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1}, got {fold}")
    folds = assign_folds(table[group_column], k, table[label_column] if label_column else None, seed)
    return table[folds != fold], table[folds == fold]


def folds_of_one_cross_validation(model_paths: Sequence, keys: Sequence[str] = ("num_folds", "fold_seed")
                                  ) -> list[tuple[str, dict]]:
    """The model folders of folds 0..k-1 of one cross-validation, in fold order, with their ``data``.

    Args:
        model_paths: One model folder per fold, in any order (``train.py --fold k``).
        keys: ``run_config.json`` data entries every fold must share (number of folds, seed, data set).

    Raises:
        DataError: A folder not trained as a fold, folds missing or repeated, or folds of different
            settings; the line lists the folders.
    """
    from dltk2.model_folder import ModelFolder

    datas = [ModelFolder(path).read_config().data for path in model_paths]
    settings = {tuple(str(d.get(key)) for key in keys) for d in datas}
    folds = sorted(d.get("fold") if d.get("fold") is not None else -1 for d in datas)
    if len(settings) != 1 or folds != list(range(int(datas[0].get("num_folds") or 0))):
        raise DataError(f"{', '.join(map(str, model_paths))}: not the folds 0..k-1 of one cross-validation "
                        f"(folds {folds}, settings {sorted(map(str, settings))})")
    return sorted(((str(path), data) for path, data in zip(model_paths, datas)), key=lambda pair: pair[1]["fold"])


def out_of_fold(predictions: Sequence[pd.DataFrame], id_column: str, expected_ids: Sequence | None = None
                ) -> pd.DataFrame:
    """The folds' validation predictions as one table with a ``fold`` column; each case exactly once.

    Args:
        predictions: Fold k's predictions of its own validation cases, in fold order.
        id_column: The case identifier.
        expected_ids: Every case of the data set: none may be missing.

    Raises:
        DataError: A case predicted by two folds, or one no fold predicted; named.
    """
    table = pd.concat([frame.assign(fold=fold) for fold, frame in enumerate(predictions)], ignore_index=True)
    counts = table[id_column].astype(str).value_counts()
    twice = counts[counts > 1]
    if len(twice):
        raise DataError(f"case {twice.index[0]} was predicted by {twice.iloc[0]} folds ({len(twice)} such cases): "
                        "the folds' validation sets overlap")
    if expected_ids is not None:
        missing = sorted(set(map(str, expected_ids)) - set(counts.index))
        if missing:
            raise DataError(f"{len(missing)} case(s) predicted by no fold, e.g. {missing[0]}")
    return table


def _classification_metrics(frame: pd.DataFrame, label: str, score: str, probabilities: Sequence[str] = ()) -> dict:
    from sklearn.metrics import accuracy_score, roc_auc_score

    labels = frame[label].to_numpy().astype(int)
    if len(probabilities) > 2:  # several classes: one-vs-rest macro AUC where every class is present
        values = frame[list(probabilities)].to_numpy(float)
        present = len(np.unique(labels)) == len(probabilities)
        auc = roc_auc_score(labels, values / values.sum(1, keepdims=True), multi_class="ovr",
                            labels=list(range(len(probabilities)))) if present else float("nan")
        return {"roc_auc": float(auc), "accuracy": float(accuracy_score(labels, values.argmax(1))),
                "cases": int(len(frame))}
    scores = frame[score].to_numpy(float)
    both = len(np.unique(labels)) == 2
    return {"roc_auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
            "accuracy": float(accuracy_score(labels, (scores >= 0.5).astype(int))), "cases": int(len(frame))}


def summarise_folds(table: pd.DataFrame, task: str, label: str = "label", score: str = "score",
                    metrics: Sequence[str] = (), probabilities: Sequence[str] = ()) -> pd.DataFrame:
    """Cross-validated metrics of an out-of-fold table: pooled over all cases, and mean and std over folds.

    Args:
        table: :func:`out_of_fold`'s table.
        task: ``"classification"`` (``label`` 0/1, ``score`` the positive class's probability: ROC AUC
            and accuracy), ``"regression"`` (``label`` true, ``score`` predicted: MAE and mean error)
            or ``"segmentation"`` (per-case ``metrics`` columns such as ``dice/liver``, averaged).
        metrics: The per-case columns of a segmentation table.
        probabilities: For a classification of more than two classes, the per-class probability
            columns in class order: ROC AUC one-vs-rest (macro), accuracy of the most probable class.

    Returns:
        One row per metric: ``metric``, ``pooled`` (over every case), ``fold_mean``, ``fold_std``
        (over the folds' values) and ``folds``.
    """
    folds = sorted(table["fold"].unique())

    def measure(frame: pd.DataFrame) -> dict:
        if task == "classification":
            return _classification_metrics(frame, label, score, probabilities)
        if task == "regression":
            error = frame[score].to_numpy(float) - frame[label].to_numpy(float)
            return {"mean_absolute_error": float(np.mean(np.abs(error))), "mean_error": float(np.mean(error)),
                    "cases": int(len(frame))}
        if task == "segmentation":
            return {**{name: float(np.nanmean(frame[name].to_numpy(float))) if frame[name].notna().any()
                       else float("nan") for name in metrics}, "cases": int(len(frame))}
        raise ValueError(f"task must be classification, regression or segmentation, got {task!r}")

    pooled = measure(table)
    per_fold = [measure(table[table["fold"] == fold]) for fold in folds]
    rows = []
    for name, value in pooled.items():
        values = np.asarray([fold[name] for fold in per_fold], float)
        scored = values[~np.isnan(values)]  # a fold where the metric is undefined does not count
        rows.append({"metric": name, "pooled": value,
                     "fold_mean": float(scored.mean()) if len(scored) else float("nan"),
                     "fold_std": float(scored.std()) if len(scored) else float("nan"), "folds": len(folds)})
    return pd.DataFrame(rows)
