"""The dataset options that messages name, in the words of the interface that shows them.

A message of the datasets package writes an option as [[name]], its API field name. The command line
shows the flag (--nearest), the JSON API the field ("the nearest field"), and a page the label of its
own control: the API sends the marked text along as `template` and the page fills in its labels.
"""
import re
from collections.abc import Callable

from digitslite.errors import UserError

CONTROL = re.compile(r"\[\[(\w+)\]\]")
FLAGS = {"ignore_label": "--ignore-value"}  # the flags not spelled --field-name


def in_words(text: str, word: Callable[[str], str]) -> str:
    return CONTROL.sub(lambda match: word(match[1]), text)


def as_flags(text: str) -> str:
    return in_words(text, lambda name: FLAGS.get(name, "--" + name.replace("_", "-")))


def as_fields(text: str) -> str:
    return in_words(text, lambda name: f"the {name} field")


class OptionError(UserError):
    """A UserError whose message names options as [[name]]: str() speaks of the command line's flags,
    `template` keeps the marks for the API and the pages."""

    def __init__(self, template: str):
        super().__init__(as_flags(template))
        self.template = template
