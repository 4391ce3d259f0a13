"""Which GGUF to run: the catalog of known models and their manifests (catalog.py), and the pinned
assets fetched from package registries (assets.py)."""

from .catalog import ResolvedModel, manifests, resolve

__all__ = ["ResolvedModel", "manifests", "resolve"]
