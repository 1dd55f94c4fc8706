"""Predicts age for IXI_HH subjects with a trained model, averaging the predictions of random crops.

Prints one line per subject, then the mean absolute error, as DLTK did::

    id=IXI566; pred=47.20 yrs; true=42.97 yrs; run time=0.23 s;
    ...
    mean absolute err=5.399 yrs

and writes a CSV (``--output_csv``) with the averaged prediction and its spread across crops, and
to ``--output_dir`` (default ``<model_path>/evaluation``) the predicted-against-true plot,
``metrics.json`` (MAE, mean error, Pearson's r) and ``report.html``, a page with all of them.
The prediction is the exported SavedModel's own function: for the same ``--seed`` (0 is the
SavedModel's ``serving_default``), TF Serving gives the same answer.

New scans (``--images``, NIfTI files or DICOM series folders, in any orientation and spacing) are
predicted instead of the CSV's subjects; ``--sr_dir`` writes a DICOM Structured Report of each DICOM
scan's prediction, referencing its images, for a PACS.

Example:
    python applications/IXI_HH_age/deploy.py --model_path models/ixi_age
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from dltk2.apps import ixi_hh_cli
from dltk2.cli import run

TARGET = "age"
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
        predicted, true = float(prediction.outputs["prediction"]), float(prediction.label)
        explained = f" saliency={prediction.explanation.saliency_map};" if prediction.explanation else ""
        print(f"id={prediction.subject_id}; pred={predicted:.2f} yrs; true={true:.2f} yrs; "
              f"run time={prediction.seconds:.2f} s;" + explained, flush=True)
        rows.append({"id": prediction.subject_id, "pred_yrs": predicted, "true_yrs": true,
                     "pred_std_yrs": float(prediction.outputs["prediction_std"]), "run_time_s": prediction.seconds})
        explanations += [prediction.explanation] if prediction.explanation else []
    table = pd.DataFrame(rows)
    print(f"mean absolute err={float(np.mean(np.abs(table['pred_yrs'] - table['true_yrs']))):.3f} yrs")
    write_csv_atomically(table, ixi_hh.predictions_csv_path(config, TARGET), float_format="%.6f")
    ixi_hh.report_age(table, config, explanations)


if __name__ == "__main__":
    run(main)
