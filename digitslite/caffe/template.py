"""Template fields in prototxt text: `{{num_classes}}`, which DIGITS-style networks leave for the
dataset's class count, and `{{ignore_label}}`, the label value the standard networks' loss and
Accuracy layers skip: the dataset's ignore value.

A field is filled with the count padded with spaces to the field's own width, so every line and
column of the text stays where the user's file (or the editor) shows it.
"""
import re

from digitslite.caffe.sourcemap import PrototxtError

NUM_CLASSES_FIELD = "{{num_classes}}"
IGNORE_LABEL_FIELD = "{{ignore_label}}"
DEFAULT_IGNORE_LABEL = 255  # the void value of PASCAL VOC labels, and a dataset's unless it says otherwise
_FIELD = re.compile(r"\{\{\s*(\w*)\s*\}\}")


class TemplateFieldError(PrototxtError):
    """A template field the caller cannot fill; the hint names how to give its value."""


def fill_template(text: str, num_classes: int | None, source: str,
                  ask: str = "give the dataset's class count", *,
                  ignore_label: int = DEFAULT_IGNORE_LABEL) -> str:
    """`text` with {{num_classes}} and {{ignore_label}} filled (column-preserving); any field left is a
    TemplateFieldError at its line and column, whose fix is `ask` (in the words of the caller's
    interface)."""
    if num_classes is not None and NUM_CLASSES_FIELD in text:
        if num_classes < 1:
            raise PrototxtError(f"the class count must be at least 1, got {num_classes}", path=source)
        text = text.replace(NUM_CLASSES_FIELD, str(num_classes).ljust(len(NUM_CLASSES_FIELD)))
    text = text.replace(IGNORE_LABEL_FIELD, str(ignore_label).ljust(len(IGNORE_LABEL_FIELD)))
    match = _FIELD.search(text)
    if match is None:
        return text
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    known = match[0] == NUM_CLASSES_FIELD
    problem = (f"template field {match[0]} is the class count, filled from the dataset" if known
               else f"template field {match[0]} is not one digitslite fills (only {NUM_CLASSES_FIELD} and "
                    f"{IGNORE_LABEL_FIELD})")
    raise TemplateFieldError(problem, path=source, line=line, column=column,
                             hint=ask if known else "write the value in its place")
