"""How the ``ivr`` parser reads and shows itself: the original flag spellings, stage commands' help limited to
the options they read, docstrings parsed once, whether a parser error comes from the config file, and the
settings a config file left null."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import textwrap
import typing
from collections.abc import Collection

BARE_FLAGS = {"--force", "--normalize_force"}


def normalize_flags(argv: list[str]) -> list[str]:
    """Accept the original spellings: ``--raw-corpora-dir`` for ``--raw_corpora_dir``, bare ``--force``."""
    out = []
    for i, arg in enumerate(argv):
        if arg.startswith("--") and not arg.startswith("---"):
            name, sep, value = arg.partition("=")
            arg = "--" + name[2:].replace("-", "_") + sep + value
            following = argv[i + 1].lower() if i + 1 < len(argv) else "--"
            if arg in BARE_FLAGS and following not in ("true", "false", "null"):
                arg += "=true"
        out.append(arg)
    return out


def config_after_command(argv: list[str], names) -> list[str]:
    """Every ``--config FILE`` (or ``-c``) moved to right after the command, in their order: before the command
    LightningCLI reads a config of per-command sections, so the file's keys would be ignored without a word; and a
    config read after a flag would override the flag, where the command line is meant to override the config."""
    command = requested_subcommand(argv, names)
    if command is None or command not in argv:
        return argv
    at = argv.index(command)
    configs: list[str] = []

    def without_configs(args: list[str]) -> list[str]:
        kept, i = [], 0
        while i < len(args):
            if args[i] in ("-c", "--config") and i + 1 < len(args):
                configs.extend(["--config", args[i + 1]])
                i += 2
                continue
            (configs if args[i].startswith("--config=") else kept).append(args[i])
            i += 1
        return kept

    before, after = without_configs(argv[:at]), without_configs(argv[at + 1:])
    return [*before, command, *configs, *after]


def requested_subcommand(argv: list[str], names) -> str | None:
    """The subcommand ``argv`` runs, when its first positional token names one (``--config`` takes a value);
    None otherwise, and then every subcommand's parser is built."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "--config"):
            i += 2
            continue
        if not arg.startswith("-"):
            return arg if arg in names else None
        i += 1
    return None


def from_config_file(message: str, argv: list[str]) -> bool:
    """Whether a parser error is about the config file: a YAML error, or an option that no flag on the command
    line sets (a misspelled key, a value of the wrong type)."""
    if "Problems parsing config" in message:
        return True
    keys = re.findall(r"(?:option|key) ['\"]([\w.]+)['\"]", message, re.IGNORECASE)
    # --key+ appends to a list option: it sets the key too
    flags = {a.partition("=")[0].removeprefix("--").removesuffix("+") for a in argv if a.startswith("--")}
    # a flag sets its key, and a nested class's key by one of its fields (--model.from_config.n_head)
    return bool(keys) and not any(f == key or f.startswith(key + ".") for key in keys for f in flags)


def cache_docstring_parsing() -> None:
    """Parse each class's docstrings once per process.

    jsonargparse parses them again for every subcommand, and with attribute docstrings that means reading
    and compiling the class's source (the Trainer's is large): about 5 s of every ``ivr`` command for 14
    subcommands. The result depends only on the class and the parse options, which stay fixed here.
    """
    from jsonargparse import _optionals

    parse = getattr(_optionals, "parse_docstring", None)
    if parse is None or hasattr(parse, "__wrapped__"):  # another jsonargparse layout, or already cached
        return
    cache: dict = {}

    def cached(component, params=False, logger=None):
        key = (component, params)
        if key not in cache:
            cache[key] = parse(component, params=params, logger=logger)
        return cache[key]

    cached.__wrapped__ = parse
    _optionals.parse_docstring = cached


def check_config_files(argv: list[str], links: dict[str, str]) -> None:
    """Each config file on the command line, read before the parser, whose errors would not name the file: one that
    is not UTF-8, or a ``--config`` file that holds no mapping of sections (empty, comments only, a list). And a key
    that follows another (``links``: target → source) set in one: the link would replace it without a word, so name
    it and the key to set instead. Files that do not read as YAML are left to the parser, which names them."""
    import yaml

    for section, config in _config_files(argv, CONFIG_SECTIONS):
        try:
            with open(config, encoding="utf-8") as f:
                tree = yaml.safe_load(f)
        except UnicodeDecodeError as err:
            raise ValueError(f"{config}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
        except (OSError, yaml.YAMLError):
            continue
        if not section and not isinstance(tree, dict):
            held = "nothing (it is empty or all comments)" if tree is None else f"a {type(tree).__name__}"
            raise ValueError(f"{config}: a config file maps sections to their settings (`data:` with `block_size: "
                             f"128` indented under it), but this one holds {held}")
        for target, source in links.items():
            if section and not target.startswith(section + "."):
                continue
            node = tree
            for part in (target.removeprefix(section + ".") if section else target).split("."):
                node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
            if node is not _MISSING:
                raise ValueError(f"{config}: {target} follows {source} and cannot be set on its own: set {source}")


# the sections a file of their own may be given to (``--data FILE``)
CONFIG_SECTIONS = {"data", "model", "trainer", "checkpoint", "progress"}


def _config_files(argv: list[str], sections: set[str]) -> list[tuple[str, str]]:
    """The config files on the command line, each with the section it is read into ("" for the whole config):
    ``--config FILE``, ``-c FILE``, ``--config=FILE``, and a section's own file, ``--data FILE`` or ``--data=FILE``."""
    found = []
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        section = "" if name in ("-c", "--config") else name.removeprefix("--") if name.startswith("--") else None
        if section is None or (section and section not in sections):
            continue
        path = value if eq else argv[i + 1] if i + 1 < len(argv) else None
        if path and not path.startswith("-") and not path.lstrip().startswith("{"):  # a file, not inline YAML
            found.append((section, path))
    return found


_MISSING = object()


def help_data_only(parser, own: Collection[str] = ()) -> None:
    """Show only the data.* options in ``parser``'s help and usage, and the command's ``own`` (its shorthands). The
    others are still parsed and printed by ``--print_config``, so one config serves every command, but the stage
    does not read them."""
    shown = ("help", "config", "print_config", *own)
    hidden = [(group, [a for a in group._group_actions if a.dest not in shown and not _is_data(a.dest)])
              for group in parser._action_groups]
    hidden = [(group, actions) for group, actions in hidden if actions]
    # a group keeps its heading while any of its options is shown (the first holds --help and --seed_everything)
    keeps = {id(group) for group, _ in hidden if any(a.dest in shown or _is_data(a.dest) for a in group._group_actions)}

    def data_only(format_text):
        @functools.wraps(format_text)
        def formatted(*args, **kwargs):
            saved = [(group, group.title, group.description, [a.help for a in actions]) for group, actions in hidden]
            for group, actions in hidden:
                if id(group) not in keeps:
                    group.title = group.description = None
                for action in actions:
                    action.help = argparse.SUPPRESS
            try:
                return format_text(*args, **kwargs)
            finally:
                for (group, title, description, helps), (_, actions) in zip(saved, hidden):
                    group.title, group.description = title, description
                    for action, help_text in zip(actions, helps):
                        action.help = help_text
        return formatted

    parser.format_help = data_only(parser.format_help)
    parser.format_usage = data_only(parser.format_usage)


def _is_data(dest: str) -> bool:
    return dest == "data" or dest.startswith("data.")


def condensed_error(message: str, links: dict[str, str] | None = None) -> str:
    """A parser error in one or two lines: a union's dump of every subtype (``str | None``) as the key, the value
    and what it may be; an option linked from another as the option to set instead (``links``: target → the
    setting to name, where the link's source is no setting)."""
    linked = re.match(r"argument (?:\w+\()?([\w.]+)\)? --> ([\w.]+):", message)
    if linked:
        source = (links or {}).get(linked.group(2), linked.group(1))
        return f"{linked.group(2)} follows {source} and cannot be set on its own: set {source}"
    # a union (``ModelShape | None``) whose class refused a value: that refusal, which names its key
    refused = re.search(r"^\s*- ([\w.]+ must [^\n]+)", message, re.M)
    if refused and "Does not validate against any of the Union subtypes" in message:
        return refused.group(1)
    key = re.search(r'Parser key "([\w.]+)"', message)
    if key is None:
        return message
    if "Does not validate against any of the Union subtypes" in message:
        expected = re.findall(r"- Expected a ([^\n]+)", message)
        given = re.search(r"Given value: ([^\n]*)", message)
    else:  # one type: 'Expected a typing.Literal[...]. Got value: foo'
        expected = re.findall(r"Expected a (.+?)\. Got value", message)
        given = re.search(r"Got value: ([^\n]*)", message)
    # a field of a nested class (model.from_config.n_head) refused by its class: that field's own error, condensed
    inner = _class_problem(message)
    field = re.match(r'Parser key "([\w.]+)":', inner)
    if field:
        return condensed_error(f'Parser key "{key.group(1)}.{field.group(1)}":{inner[field.end():]}', links)
    unknown = re.match(r"Option '([\w.]+)' is not accepted", inner)
    if unknown:
        return f"{key.group(1)} does not accept option '{unknown.group(1)}'"
    nested = re.search(r"Given value: NestedArg\(key='([\w.]+)', val='([^\n]*)'\)", message)
    if nested:  # a field of a nested class (model.from_config.n_head): its own type is not in the message
        return f"{key.group(1)}.{nested.group(1)}: {nested.group(2)} is not a valid value"
    # a class given by path (a callback, a logger) that does not import or refuses its arguments: that cause
    problem = re.search(r"- Problem with given class_path '([^']+)':\n\s*([^\n]+)", message)
    if problem:
        return f"{key.group(1)}: {problem.group(1)}: {problem.group(2).strip()}"
    if not expected or given is None:
        return message
    names = [_type_name(e) for e in expected]
    allowed = [n for n in names if n != "null"] + (["null"] if "null" in names else [])
    return f"{key.group(1)}: {given.group(1)} is not allowed; expected {' or '.join(allowed)}"


def _class_problem(message: str) -> str:
    """The error a class given for a key (``- Problem with given class_path '...':``) reports, unindented; "" if
    none."""
    at = re.search(r"^( *)- Problem with given class_path '[^']+':\n", message, re.M)
    if at is None:
        return ""
    lines = []
    for line in message[at.end():].splitlines():
        if len(line) - len(line.lstrip()) <= len(at.group(1)):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def _type_name(expected: str) -> str:
    """``typing.Literal['a', 'b']`` → ``one of 'a', 'b'``; ``<class 'int'>`` → ``int``; ``NoneType`` → ``null``."""
    expected = expected.strip()
    if "NoneType" in expected:
        return "null"
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", expected)
    if literal:
        return f"one of {literal.group(1)}"
    return re.sub(r"<class '([\w.]+)'>", r"\1", expected)


def settings_left_null(values: dict, owner: object, prefix: str) -> list[str]:
    """The keys under ``prefix`` that ``values`` (a section of the parsed config, as a dict) sets to null where
    ``owner``'s types allow no None, nested settings dataclasses followed. The parser refuses ``null`` on the
    command line, but a config file's empty value (``general_languages:``) reaches the settings as None."""
    init = owner if dataclasses.is_dataclass(owner) else owner.__init__
    left = []
    for name, hint in typing.get_type_hints(init).items():
        if name == "return" or name not in values:
            continue
        value, args = values[name], typing.get_args(hint)
        if value is None and hint is not typing.Any and type(None) not in args and hint is not type(None):
            left.append(f"{prefix}.{name}")
        inner = [a for a in args if a is not type(None)] if args else [hint]
        if isinstance(value, dict) and len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            left += settings_left_null(value, inner[0], f"{prefix}.{name}")
    return left


def groups_given_values(values: dict, owner: object, prefix: str) -> list[str]:
    """The keys under ``prefix`` whose type is a group of settings (a settings dataclass such as ``data.select``) that
    ``values`` sets to a plain value or a list (``select: 2000`` in a config file): the parser takes such a value,
    and building the group would then fail with a TypeError naming no key. Nested groups are followed."""
    init = owner if dataclasses.is_dataclass(owner) else owner.__init__
    given = []
    for name, hint in typing.get_type_hints(init).items():
        if name == "return" or name not in values or not dataclasses.is_dataclass(hint):
            continue
        value = values[name]
        if isinstance(value, dict):
            given += groups_given_values(value, hint, f"{prefix}.{name}")
        elif value is not None:
            given.append(f"{prefix}.{name}")
    return given
