"""Plain-text tables of a validation report and a created dataset, for the terminal."""
from digitslite.datasets.create import DatasetSummary
from digitslite.datasets.problems import Problem
from digitslite.datasets.report import STAGES, ValidationReport


def format_table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    """Left-aligned columns as wide as their widest cell."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, ["-" * width for width in widths], *rows]
    return "\n".join(indent + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                     .rstrip() for line in lines)


def format_problems(problems: list[Problem]) -> str:
    """One table per problem kind: what, how many, the fix and the first examples."""
    blocks = []
    for problem in problems:
        title = f"{problem.severity.upper()} {problem.kind}: {problem.count} {problem.what}"
        rows = [[str(number), example] for number, example in enumerate(problem.shown_examples, start=1)]
        more = problem.count - len(problem.examples)
        if more > 0:
            rows.append(["...", f"and {more} more"])
        blocks.append(f"{title}\n  fix: {problem.fix}\n{format_table(['#', 'first examples'], rows)}")
    return "\n\n".join(blocks) if blocks else "no problems found"


def format_classes(report: ValidationReport) -> str:
    """Per-class pixels, share of labelled pixels and images containing the class, per split."""
    headers = ["index", "name", "colour"]
    for stage in STAGES:
        headers += [f"{stage} px", f"{stage} %", f"{stage} images"]
    rows = []
    for stat in report.classes:
        row = [str(stat.index), stat.name, ",".join(str(channel) for channel in stat.colour)]
        for stage in STAGES:
            row += [str(stat.pixels[stage]), f"{100 * stat.frequency[stage]:.2f}", str(stat.images[stage])]
        rows.append(row)
    counts = ", ".join(f"{stage} {report.counts[stage]} pairs" for stage in STAGES)
    ignored = ", ".join(f"{stage} {report.ignored_pixels[stage]} px" for stage in STAGES)
    heading = f"classes ({counts}; ignore value {report.ignore_label}: {ignored}; seed {report.seed})"
    return f"{heading}\n{format_table(headers, rows)}" if rows else f"{heading}\n  no classes found"


def format_report(report: ValidationReport) -> str:
    return f"{format_problems(report.problems)}\n\n{format_classes(report)}"


def format_summary(summary: DatasetSummary) -> str:
    """What was created, where, with the warnings and the class table."""
    info = summary.info
    size = info["image_size"]["train"]
    shape = f"{size['min'][0]}x{size['min'][1]}" if size["uniform"] else \
        f"{size['min'][0]}x{size['min'][1]} to {size['max'][0]}x{size['max'][1]}"
    counts = info["counts"]
    text = (f"dataset written to {summary.path}\n"
            f"  {counts['train']} train and {counts['val']} val pairs, {len(info['classes'])} classes, "
            f"images {shape}, encoding {info['encoding']}, mean {info['mean_file'] or 'none'}")
    if summary.report.warnings:
        text += "\n\n" + format_problems(summary.report.warnings)
    return f"{text}\n\n{format_classes(summary.report)}"
