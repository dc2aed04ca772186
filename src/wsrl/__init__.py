"""wsrl: offline-to-online reinforcement learning with warm-start fine-tuning (WSRL)."""

__version__ = "0.1.0"
