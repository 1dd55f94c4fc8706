"""Where a training run computes: distribution strategy, precision policy, and who is chief.

``select_strategy`` picks one device, ``MirroredStrategy`` over several, or
``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``; ``select_precision_policy`` sets Keras' global
dtype policy by device (``mixed_float16`` on GPU, float32 on CPU, where float16 has no 3D pooling
kernels).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Sequence

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)


PRECISION_POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")



def select_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """Chooses how to distribute training.

    * ``TF_CONFIG`` names a cluster of more than one worker: ``MultiWorkerMirroredStrategy``.
    * ``devices`` lists more than one device, or several GPUs are visible: ``MirroredStrategy``.
    * Otherwise the default strategy (one device).

    Args:
        devices: Device names such as ``["/gpu:0", "/gpu:1"]`` or ``["/cpu:0", "/cpu:1"]``.

    Returns:
        The strategy; build and compile the model inside ``strategy.scope()``.
    """
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    workers = config.get("cluster", {}).get("worker", [])
    if len(workers) > 1:
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=communication
        )
    elif devices is not None and len(devices) > 1:
        cross_device_ops = (
            tf.distribute.HierarchicalCopyAllReduce()
            if not any("gpu" in d.lower() for d in devices)
            else None
        )
        strategy = tf.distribute.MirroredStrategy(devices=list(devices), cross_device_ops=cross_device_ops)
    elif devices is None and len(tf.config.list_logical_devices("GPU")) > 1:
        strategy = tf.distribute.MirroredStrategy()
    elif devices:
        strategy = tf.distribute.OneDeviceStrategy(devices[0])
    else:
        strategy = tf.distribute.get_strategy()
    logger.info("strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy



def select_precision_policy(policy: str = "auto") -> str:
    """Sets Keras' global dtype policy and returns its name.

    ``auto`` gives ``mixed_float16`` where a GPU is visible and ``float32`` on CPU: float16 has no CPU
    kernels for MaxPool3D / AvgPool3D. ``mixed_bfloat16`` works on CPU and on recent GPUs.

    Raises:
        ValueError: Unknown policy, or ``mixed_float16`` without a GPU.
    """
    if policy not in PRECISION_POLICIES:
        raise ValueError(f"unknown precision policy {policy!r}; choose one of {PRECISION_POLICIES}")
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if policy == "auto":
        policy = "mixed_float16" if has_gpu else "float32"
    if policy == "mixed_float16" and not has_gpu:
        raise ValueError(
            "mixed_float16 needs a GPU: TensorFlow has no float16 CPU kernels for 3D pooling; "
            "use float32 or mixed_bfloat16 on CPU"
        )
    keras.mixed_precision.set_global_policy(policy)
    return policy



def is_chief_by_config() -> bool:
    """Whether ``TF_CONFIG`` makes this process its cluster's chief (true without a cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    if not task or sum(len(tasks) for tasks in cluster.values()) <= 1:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0



def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)

