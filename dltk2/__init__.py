"""dltk2: a TensorFlow 2 / Keras 3 toolkit for deep learning on medical images.

Importing ``dltk2`` before TensorFlow turns on oneDNN's optimised CPU kernels where the user has not
chosen (``TF_ENABLE_ONEDNN_OPTS`` unset). TensorFlow leaves them off on CPUs without AVX-512, where a
3D residual network then trains about 3.3x slower. The variable is read once, when TensorFlow is first
imported, so import ``dltk2`` (or call :func:`dltk2.environment.configure_onednn`) first.

It also raises glibc's malloc thresholds so that the input pipeline's freed arrays are reused rather
than unmapped and faulted in again (:func:`dltk2.environment.configure_malloc`; about 2x the examples
per second of a NIfTI reader; ``DLTK2_MALLOC_TUNING=0`` leaves malloc alone).

dltk2's Keras layers, losses and metrics are registered as soon as Keras and TensorFlow are imported
(:mod:`dltk2.registration`), so ``keras.models.load_model`` reads every dltk2 model file, while
``import dltk2`` itself loads no TensorFlow.
"""

from dltk2.environment import configure_malloc, configure_onednn

from dltk2.registration import register_on_import

configure_onednn()
configure_malloc()
register_on_import()

__version__ = "0.1.0"
