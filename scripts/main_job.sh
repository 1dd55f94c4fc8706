#!/usr/bin/env bash
# The main job on a CPU: synthetic IXI_HH data -> train the sex classifier -> deploy on held-out
# subjects -> export (model.keras and a TF Serving SavedModel). About 3 minutes on 2 cores (install aside).
#
#   RUN_DIR   where data and model go (default: runs/)
#   PYTHON    interpreter with dltk2 installed (default: python)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-runs}
PYTHON=${PYTHON:-python}
DATA="$RUN_DIR/IXI_synthetic"
MODEL="$RUN_DIR/ixi_sex_cpu"

if [ ! -f "$DATA/demographic_HH.csv" ]; then
  echo "== 1/4 making 100 synthetic IXI_HH subjects in $DATA"
  "$PYTHON" data_scripts/make_synthetic_ixi.py --output_dir "$DATA" --num_subjects 100 --seed 0 --spacings 2,4
else
  echo "== 1/4 using the synthetic subjects already in $DATA"
fi

echo "== 2/4 training (CPU preset; resumes $MODEL if it exists, --restart starts over)"
"$PYTHON" applications/IXI_HH_sex/train.py --flagfile applications/IXI_HH_sex/cpu_preset.flags \
  --model_path "$MODEL" --data_csv "$DATA/demographic_HH.csv" "$@"

echo "== 3/4 deploying on the 20 held-out subjects (4 random crops each)"
"$PYTHON" applications/IXI_HH_sex/deploy.py --model_path "$MODEL" --num_crops 4

echo "== 4/4 exported"
VERSION=$(ls "$MODEL/export" | sort -n | tail -n 1)
"$PYTHON" - "$MODEL/export/$VERSION" <<'PY'
import sys
import dltk2.cli  # first: TensorFlow's start-up lines kept off stderr, as in every dltk2 script
import tensorflow as tf
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
inputs = {name: spec.shape for name, spec in signature.structured_input_signature[1].items()}
outputs = {name: spec.shape for name, spec in signature.structured_outputs.items()}
print(f"SavedModel for TF Serving: {sys.argv[1]}\n  serving_default inputs {inputs}\n  outputs {outputs}")
PY
echo "Keras model: $MODEL/model.keras"
echo "TensorBoard: tensorboard --logdir $MODEL/logs"
