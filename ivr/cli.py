"""The ``ivr`` command line: LightningCLI over :class:`ivr.commands.IVRTrainer`, whose methods are the commands.

Every subcommand reads the same config (``--config FILE`` after the subcommand). A command builds only its own
parser; an error in input or settings prints one line and exits with status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import platform
import sys
from pathlib import Path

from jsonargparse import ArgumentError, set_parsing_settings
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from ivr.causal_lm import PretrainedUnavailableError
from ivr.cli_parsing import (
    cache_docstring_parsing,
    check_config_files,
    condensed_error,
    config_after_command,
    from_config_file,
    groups_given_values,
    help_data_only,
    normalize_flags,
    requested_subcommand,
    settings_left_null,
)
from ivr.commands import DATA_ONLY_COMMANDS, STAGE_COMMANDS, IVRTrainer, check_training_settings, export_model
from ivr.data import IVRDataModule
from ivr.model import IVRLanguageModel
from ivr.paths import ArtifactPaths
from ivr.progress import ProgressLog
from ivr.tokenizers.verify import DistillationMismatch

log = logging.getLogger(__name__)
# stamps are written after their stage's outputs, which appear only whole: a rerun resumes
INTERRUPTED = ("\nivr: interrupted; run the same command again to go on from the last finished stage "
               "(`--ckpt_path last` resumes a fit from its last checkpoint)")


# keys that follow another (target: source); a config file setting a target is refused, since the link replaces it
# the align stage reads the base model's embeddings: the same model the LightningModule trains
PARSE_LINKS = {"data.base_model_name_or_path": "model.model_name_or_path",
               "data.base_model_config": "model.from_config"}
# model.embedding_init follows the data module's rows, read where the align stage writes them: no setting of its own
LINKED_KEYS = {**PARSE_LINKS, "checkpoint.dirpath": "data.artifacts_dir",
               "model.embedding_init": "data.embeddings_output_dir"}


# top-level keys of a fit's saved config (lightning_logs/version_N/config.yaml) that other commands' methods may lack
FIT_ONLY_KEYS = ("ckpt_path", "weights_only")


def version_line() -> str:
    """``ivr --version``: with the libraries whose versions decide the artifacts (the tokenizers' regex engine, the
    Unigram model) and the training, which a bug report needs."""
    import tokenizers
    import torch
    import transformers
    from lightning import __version__ as lightning_version

    from ivr import __version__

    return (f"ivr {__version__} (Python {platform.python_version()}, torch {torch.__version__}, lightning "
            f"{lightning_version}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__})")


class _PrintVersion(argparse.Action):
    """argparse's own version action wraps the line at the terminal's width; a bug report wants it whole."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()


def _checkpoints_dir(artifacts_dir: str) -> str:
    return str(ArtifactPaths.from_config(artifacts_dir).checkpoints_dir)


class IVRCLI(LightningCLI):
    def __init__(self, *args, requested: str | None = None, ckpt_flag: bool = False, **kwargs) -> None:
        self._requested = requested
        self._ckpt_flag = ckpt_flag
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        stage = {"model", "datamodule"}
        return {
            **LightningCLI.subcommands(),
            "train": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "prepare": stage,
            "init": stage,
            **{name: stage for name in STAGE_COMMANDS},
            "align": stage,
            "verify-tokenizer": stage,
            "export": stage,
        }

    def _parse_ckpt_path(self) -> None:
        # LightningCLI would copy a --ckpt_path file's hyperparameters over the config and the flags: the model's
        # settings come from the config and the flags for a file as for `last` (a resumed fit may change its
        # learning rate). A cut or damaged file, or one that is no Lightning checkpoint, is named here.
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path is not None and subcommand not in ("fit", "train") and not self._ckpt_flag:
            # one config serves every command, and a fit's saved config.yaml records where that fit resumed from:
            # the scoring and export commands take their checkpoint from the command line only
            log.info("ivr %s: the config file's ckpt_path (%s) is a fit's; this command takes --ckpt_path only "
                     "(default: the last fit's checkpoint)", subcommand, ckpt_path)
            self.config[subcommand]["ckpt_path"] = ckpt_path = None
        if ckpt_path and Path(ckpt_path).is_file():
            from ivr.checkpoints import lightning_checkpoint

            lightning_checkpoint(ckpt_path)

    def before_instantiate_classes(self) -> None:
        subcommand = self.config.get("subcommand")
        config = (self.config[subcommand] if subcommand else self.config).as_dict()  # run=False: no subcommand
        left = [key for section, owner in (("data", self.datamodule_class), ("model", self.model_class))
                for key in settings_left_null(config.get(section) or {}, owner, section)]
        if left:
            raise ValueError(f"{', '.join(left)}: null in a config file (an empty `key:`) where a value is needed; "
                             "give one, or leave the key out for its default")
        flat = [key for section, owner in (("data", self.datamodule_class), ("model", self.model_class))
                for key in groups_given_values(config.get(section) or {}, owner, section)]
        if flat:
            raise ValueError(f"{', '.join(flat)}: a group of settings, given a value; write its keys indented under it "
                             "(`select:`, then `num_replacements: 2000` on the next line, indented)")
        if subcommand in ("fit", "train"):
            check_training_settings(self.config[subcommand])

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        parser.add_argument("--version", action=_PrintVersion, nargs=0,
                            help="Print the versions of ivr and of the libraries it runs on, and exit.")
        return parser

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs):
        if self._requested is not None and subcommand != self._requested:
            # a command builds only its own parser: the full parsers of all fourteen cost about 0.6 s of every
            # command (six times one parser); `ivr --help`, with no command named, still builds them all
            return self.init_parser(**kwargs)
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        parser.epilog = DEBUG_NOTE
        taken = {action.dest for action in parser._actions}
        for name in FIT_ONLY_KEYS:
            if name not in taken:  # a fit's saved config.yaml holds them: it serves every command, as any config
                parser.add_argument(f"--{name}", default=None, help="a fit's option, accepted and ignored here")
        if subcommand in DATA_ONLY_COMMANDS:
            # init's shorthands (--force, --raw_corpora_dir, ...) are its method's own arguments
            own = set(inspect.signature(getattr(klass, subcommand)).parameters) - {"self", "model", "datamodule"}
            help_data_only(parser, own)
        return parser

    def add_arguments_to_parser(self, parser) -> None:
        for target, source in PARSE_LINKS.items():
            parser.link_arguments(source, target)
        # the model starts from the rows the align stage wrote, when it trains on the remapped tokenizer
        parser.link_arguments("data.embedding_init", "model.embedding_init", apply_on="instantiate")
        # progress lines that a log file shows too, and checkpoints in one place across runs (`--ckpt_path last`)
        parser.add_lightning_class_args(ProgressLog, "progress")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # "link": last.ckpt points at the newest checkpoint instead of copying it (1.6 GB for SmolLM2)
        parser.set_defaults({"checkpoint.save_last": "link"})
        # a new fit on the same artifacts replaces last.ckpt, which every command reads, instead of writing last-v1
        parser.set_defaults({"checkpoint.enable_version_counter": False})
        # Lightning's class docstring is cut mid-sentence as the heading, and its save_last text names its own default
        checkpoints = parser.groups["checkpoint"]
        checkpoints.title = "Checkpoints (ModelCheckpoint), written under <data.artifacts_dir>/training/checkpoints"
        checkpoints.description = None
        save_last = next(a for a in checkpoints._group_actions if a.dest == "checkpoint.save_last")
        save_last.help = ("last.ckpt beside the other checkpoints, which --ckpt_path last and the scoring commands "
                          "read: link (a symbolic link to the newest), true (a copy) or false (none)")
        dirpath = next(a for a in checkpoints._group_actions if a.dest == "checkpoint.dirpath")
        dirpath.help = "set from data.artifacts_dir: checkpoints are always saved under <artifacts>/training/checkpoints"
        parser.link_arguments("data.artifacts_dir", "checkpoint.dirpath", compute_fn=_checkpoints_dir)

    def after_fit(self) -> None:
        """Export the trained model as a Hugging Face directory."""
        if self.trainer.is_global_zero and not self.trainer.fast_dev_run:
            print(f"ivr fit: exported to {export_model(self.model, self.datamodule)}")

    after_train = after_fit


# what bad input, bad settings or a missing prerequisite raise: the message says what to change
# (OSError: a missing file, a read-only or full disk; its message names the path)
# (MisconfigurationException: Lightning's refusal of a trainer or checkpoint setting, naming it)
USER_ERRORS = (ValueError, OSError, PretrainedUnavailableError, DistillationMismatch, MisconfigurationException)


def main(args: list[str] | None = None) -> None:
    """The ``ivr`` command. From the console (``args`` None) a user error prints one line and exits with status 2;
    ``--debug`` (or ``IVR_DEBUG=1``) shows the traceback instead. Called with ``args`` it raises, for tests."""
    # settings dataclasses document their fields with attribute docstrings; show them in --help
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    cache_docstring_parsing()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args is not None:
        return _run(config_after_command(normalize_flags(args), IVRCLI.subcommands()))
    debug = "--debug" in sys.argv[1:] or os.environ.get("IVR_DEBUG", "") not in ("", "0")
    # LightningCLI warns when given args while sys.argv has its own
    sys.argv[1:] = config_after_command(normalize_flags([a for a in sys.argv[1:] if a != "--debug"]),
                                        IVRCLI.subcommands())
    try:
        _run(None)
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"ivr: error: {condensed_error(str(err))}\n(run again with --debug for the traceback)", file=sys.stderr)
        raise SystemExit(2) from None
    except ArgumentError as err:
        if debug:
            raise
        argv = sys.argv[1:]
        command = next((a for a in argv if not a.startswith("-")), "")
        command = command if command in IVRCLI.subcommands() else ""  # `ivr foo`: the commands' list helps
        configs = [argv[i + 1] if a in ("--config", "-c") else a.partition("=")[2] for i, a in enumerate(argv)
                   if (a in ("--config", "-c") and i + 1 < len(argv)) or a.startswith("--config=")]
        where = f"{', '.join(configs)}: " if configs and from_config_file(str(err), argv) else ""
        help_command = " ".join(filter(None, ["ivr", command, "--help"]))
        print(f"ivr: error: {where}{condensed_error(str(err), LINKED_KEYS)}\n(`{help_command}` lists every option)",
              file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        if debug:
            raise
        print(INTERRUPTED, file=sys.stderr)
        raise SystemExit(130) from None


DEBUG_NOTE = "An error prints one line; --debug (or IVR_DEBUG=1) shows its traceback."
DESCRIPTION = (
    "ivr moves a pretrained causal language model onto your domain without changing its shapes: it distils the "
    "BPE tokenizer into a Unigram one with the same ids, gives ids your text never uses to strings it uses "
    "constantly, initialises their embeddings and fine-tunes. `ivr prepare` builds the artifacts, `ivr fit` "
    "also trains; each stage has a command of its own. " + DEBUG_NOTE
)


def _is_ckpt_flag(arg: str) -> bool:
    """Whether ``arg`` sets ``--ckpt_path``: spelled out, with ``=``, or abbreviated as argparse accepts it."""
    name = arg.partition("=")[0]
    return name.startswith("--") and len(name) > 3 and "--ckpt_path".startswith(name)


def _run(args: list[str] | None) -> None:
    argv = sys.argv[1:] if args is None else args
    check_config_files(argv, LINKED_KEYS)
    IVRCLI(
        IVRLanguageModel,
        IVRDataModule,
        requested=requested_subcommand(argv, IVRCLI.subcommands()),
        ckpt_flag=any(_is_ckpt_flag(a) for a in argv),
        trainer_class=IVRTrainer,
        save_config_kwargs={"overwrite": True},
        # a bad flag or config raises instead of printing the whole usage: main() prints it as one line
        parser_kwargs={"exit_on_error": False, "description": DESCRIPTION},
        args=args,
        auto_configure_optimizers=False,
    )


if __name__ == "__main__":
    main()
