"""opmerge: exact theory of diffusion trajectory distillation in the linear regime."""
__version__ = "0.1.0"
