r"""The bridge on image data (issue 5): 8x8 digits (default), ``.npy`` arrays (e.g. VAE latents) and
MNIST/CIFAR-10 files already on disk.

Submodules (import them directly; torch is needed by all but :mod:`~experiments.images.data`):

* :mod:`~experiments.images.data` — :class:`ImageDataset`, loaders, the seeded split, the Gaussian fit;
* :mod:`~experiments.images.teachers` — the Gaussian teacher fitted to the data and a small MLP
  diffusion teacher trained in the project (checkpoints, resume, DDIM sampler);
* :mod:`~experiments.images.metrics` — a digits classifier trained in the project, Fréchet distances
  (pixels and classifier features), classifier score, class coverage, nearest-neighbour memorisation;
* :mod:`~experiments.images.linearity` — how linear a teacher is per eigen-direction (``docs/theory.md`` §7);
* :mod:`~experiments.images.distill` — plan students executed on image data (any teacher);
* :mod:`~experiments.images.trajectory` — SCoT / TraFlow students on image data;
* :mod:`~experiments.images.study` — the distillation study on digits (:func:`run_images_study`);
* :mod:`~experiments.images.figures` — sample grids, gain plots, predicted-vs-measured scatter;
* :mod:`~experiments.images.throughput` — training throughput (:func:`image_throughput`);
* :mod:`~experiments.images.cli` — ``train_teacher_main`` and ``validate_images_main``.

The choices made where the spec is silent are in ``docs/images.md``.
"""
