"""Which GGUF to run: the catalog of known models and their manifests (catalog.py), and the pinned
assets fetched from package registries (assets.py)."""

from .catalog import MODEL_ENV, QWEN_ALIAS, REFERENCE_ALIAS, ResolvedModel, default_alias, manifests, resolve

__all__ = ["MODEL_ENV", "QWEN_ALIAS", "REFERENCE_ALIAS", "ResolvedModel", "default_alias",
           "manifests", "resolve"]
