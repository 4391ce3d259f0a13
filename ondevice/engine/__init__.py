"""The decode engine: the loaded model (llama.py), its sequences and caches (engine.py), and one
request's decoding state (session.py), with the token tables and prompt pieces they share."""

from .engine import Engine, ModelDefaults
from .session import Generation, Session

__all__ = ["Engine", "ModelDefaults", "Generation", "Session"]
