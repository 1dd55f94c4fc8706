"""Classifies sex for IXI_HH subjects with a trained model, averaging the predictions of random crops.

Prints one line per subject, then the accuracy, as DLTK did::

    id=IXI566; pred=1; true=1; run time=0.23 s;
    ...
    accuracy=0.964

and writes a CSV (``--output_csv``) with the averaged probabilities and their spread across crops,
and to ``--output_dir`` (default ``<model_path>/evaluation``) the per-class table, the confusion
matrix and ROC curve as PNGs, ``metrics.json`` and ``report.html``, a page with all of them.
The prediction is the exported SavedModel's own function: for the same ``--seed`` (0 is the
SavedModel's ``serving_default``), TF Serving gives the same answer.

New scans (``--images``, NIfTI files or DICOM series folders, in any orientation and spacing) are
predicted instead of the CSV's subjects; ``--sr_dir`` writes a DICOM Structured Report of each DICOM
scan's prediction, referencing its images, for a PACS.

Example:
    python applications/IXI_HH_sex/deploy.py --model_path models/ixi_sex
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from dltk2.apps import ixi_hh_cli
from dltk2.cli import run

TARGET = "sex"
ixi_hh_cli.define_deploy_flags(TARGET)


def main(argv):
    del argv
    import numpy as np
    import pandas as pd

    from dltk2.apps import ixi_hh
    from dltk2.io.atomic import write_csv_atomically

    config = ixi_hh_cli.deploy_config()
    if config.images:  # new scans, NIfTI or DICOM: predicted (and reported as DICOM SR), not scored
        ixi_hh.deploy_images(config, TARGET)
        return
    rows, explanations = [], []
    for prediction in ixi_hh.predict_subjects(config, TARGET):
        predicted, true = int(prediction.outputs["class_id"]), int(prediction.label)
        explained = f" saliency={prediction.explanation.saliency_map};" if prediction.explanation else ""
        print(f"id={prediction.subject_id}; pred={predicted}; true={true}; run time={prediction.seconds:.2f} s;"
              + explained, flush=True)
        probabilities = prediction.outputs["probabilities"]
        rows.append({"id": prediction.subject_id, "pred": predicted, "true": true,
                     "prob_male": probabilities[0], "prob_female": probabilities[1],
                     "prob_std": float(prediction.outputs["probabilities_std"][1]),
                     "run_time_s": prediction.seconds})
        explanations += [prediction.explanation] if prediction.explanation else []
    table = pd.DataFrame(rows)
    print(f"accuracy={float(np.mean(table['pred'] == table['true'])):.3f}")
    write_csv_atomically(table, ixi_hh.predictions_csv_path(config, TARGET), float_format="%.6f")
    ixi_hh.report_sex(table, config, explanations)


if __name__ == "__main__":
    run(main)
