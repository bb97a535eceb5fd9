"""nn.Module transforms and policies built on fastaug's ops."""
from .learned import Discriminator, Encoder, Generator, LearnedAugment

__all__ = ["Encoder", "Generator", "Discriminator", "LearnedAugment"]
