"""Plain-text colorization report and summary, for the terminal."""
from digitslite.datasets.colorize.report import ColorizeReport
from digitslite.datasets.create import DatasetSummary
from digitslite.datasets.report import STAGES
from digitslite.datasets.report_text import format_problems

SHOWN_BINS = 12


def format_bins(report: ColorizeReport) -> str:
    """Images per split, and the kept bins with their share of the training pixels."""
    counts = ", ".join(f"{stage} {report.counts[stage]} of {report.found[stage]} images" for stage in STAGES)
    heading = f"colour space {report.space} ({counts}; seed {report.seed})"
    if report.bins is None:
        return heading
    pixels = report.bins["pixels"]
    total = sum(pixels) or 1
    busiest = sorted(range(len(pixels)), key=lambda index: -pixels[index])[:SHOWN_BINS]
    lines = [f"  bin {index}: a {report.bins['centres'][index][0]:g} b {report.bins['centres'][index][1]:g}, "
             f"{100 * pixels[index] / total:.2f}% of pixels, weight {report.bins['weights'][index]:.3f}"
             for index in busiest]
    return (f"{heading}\n{report.bins['count']} ab bins kept ({report.bins['choice']}); the most frequent:\n"
            + "\n".join(lines))


def format_colorize_report(report: ColorizeReport) -> str:
    return f"{format_problems(report.problems)}\n\n{format_bins(report)}"


def format_colorize_summary(summary: DatasetSummary) -> str:
    info = summary.info
    text = (f"dataset written to {summary.path}\n  task colorization, {info['counts']['train']} train and "
            f"{info['counts']['val']} val images, chroma histogram in {info['histogram_file']}")
    if summary.report.warnings:
        text += "\n\n" + format_problems(summary.report.warnings)
    return f"{text}\n\n{format_bins(summary.report)}"
