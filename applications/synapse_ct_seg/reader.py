"""Reading preprocessed Synapse cases for segmentation.

One row per case: ``(id, imgs, lbls)`` from preprocessing.py's CSVs. TRAIN: class-balanced patches
(every organ a patch centre as often as the background), a random intensity offset and noise, no
flips (left and right organs have different labels). EVAL: the same patches at fixed positions.
PREDICT: the whole volume. The reading itself is :func:`dltk2.datasets.synapse.read_fn`.
"""

from dltk2.datasets import synapse

read_fn = synapse.read_fn
NUM_CLASSES = synapse.NUM_CLASSES
