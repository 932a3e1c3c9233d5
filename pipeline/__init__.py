"""painter: a Kaggle "I'm Something of a Painter Myself" pipeline for GAN art."""

__version__ = "0.1.0"
