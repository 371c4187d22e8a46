"""ivr: move a pretrained GPT-2 onto a domain without changing the model's shapes."""

__version__ = "0.1.0"
