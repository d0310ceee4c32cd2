r"""The bridge on image data (issue 5): 8x8 digits (default), ``.npy`` arrays (e.g. VAE latents) and
MNIST/CIFAR-10 files already on disk.

Submodules (import them directly; torch is needed by all but :mod:`~experiments.images.data`):

* :mod:`~experiments.images.data` — :class:`ImageDataset`, loaders, the seeded split, the Gaussian fit;
* :mod:`~experiments.images.teachers` — every public name of the teacher modules, re-exported:

  - :mod:`~experiments.images.teacher_base` — :class:`ImageTeacher`, the denoiser + DDIM sampler interface;
  - :mod:`~experiments.images.gaussian_teacher` — the Gaussian fitted to the data, as the one
    :class:`experiments.teacher.GaussianTeacher` with the data mean;
  - :mod:`~experiments.images.denoiser` — the MLP denoiser network;
  - :mod:`~experiments.images.trained_teacher` — the trained network run as a sampler;
  - :mod:`~experiments.images.teacher_config`, :mod:`~experiments.images.checkpoints`,
    :mod:`~experiments.images.teacher_training` — configuration, checkpoints (with provenance), training
    (resumable bit for bit);
* :mod:`~experiments.images.teacher_quality` — a trained teacher's sample quality, written beside its checkpoint;
* :mod:`~experiments.images.metrics` — a digits classifier trained in the project, Fréchet distances
  (pixels and classifier features), classifier score, class coverage, nearest-neighbour memorisation;
* :mod:`~experiments.images.linearity` — how linear a teacher is per eigen-direction (``docs/theory.md`` §7);
* :mod:`~experiments.images.distill` — plan students executed on image data (any teacher);
* :mod:`~experiments.images.trajectory` — SCoT / TraFlow students on image data;
* :mod:`~experiments.images.study` — the distillation study on digits (:func:`run_images_study`), with its
  units (:mod:`~experiments.images.study_units`, cached in an :class:`opmerge.io.ResultCache`) and the
  comparison with the model (:mod:`~experiments.images.comparison`);
* :mod:`~experiments.images.figures` — sample grids, gain plots, predicted-vs-measured scatter;
* :mod:`~experiments.images.throughput` — training throughput (:func:`image_throughput`);
* :mod:`~experiments.images.cli` — ``train_teacher_main`` and ``validate_images_main``.

The choices made where the spec is silent are in ``docs/images.md``.
"""
