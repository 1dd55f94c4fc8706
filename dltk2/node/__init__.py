"""A DICOM node: receive studies (C-STORE, or pull by QIDO-RS/WADO-RS), run the served models, send SEG/SR back.

``dltk2 node serve --config node.toml`` (:mod:`dltk2.node.cli`) runs :class:`dltk2.node.server.Node`;
``dltk2 node pull`` runs :func:`dltk2.node.pull.pull`. The configuration (:mod:`dltk2.node.config`)
says who may send, which model reads which series and where results go; the spool
(:mod:`dltk2.node.spool`) and the state database (:mod:`dltk2.node.state`) make every acknowledged
instance survive a kill and every series be processed once. Nothing here imports TensorFlow until a
model is loaded.
"""
