"""Reading IXI_HH for sex classification.

One row per subject: ``(id, image, label)`` with label ``SEX_ID - 1`` (0 male, 1 female). In TRAIN mode
each T1 volume is whitened, flipped left-right at random and cut into ``n_examples`` random crops of
``example_size``; EVAL takes crops at fixed positions per subject; PREDICT gives the raw volume, which
the crop-averaging predictor (deploy and the exported SavedModel alike) whitens and crops itself.
The reading itself is :func:`dltk2.datasets.ixi.read_fn`, shared with age regression.
"""

from dltk2.datasets import ixi

TARGET = "sex"
read_fn = ixi.read_fn
