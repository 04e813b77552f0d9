"""`nightshift export PROFILE`: the rows of a profile's table as a file the import reads back."""

import sys
from pathlib import Path

import click

from nightshift.imports.export import export_rows
from nightshift.imports.messages import message
from nightshift.imports.profiles import PROFILES, Profile
from nightshift.imports.writing import FORMATS, UnwritableCell
from pipelines.cli.runner import (
    UsageError,
    account_id_of,
    app_engine,
    current_settings,
    echo_json,
    json_option,
    require_migrated,
)


def known_profile(name: str) -> Profile:
    """The profile named, or bad usage naming the known ones."""
    if name not in PROFILES:
        raise UsageError(message("no_such_profile", current_settings().lang, profile=name, known=", ".join(PROFILES)))
    return PROFILES[name]


def file_format(given: str | None, output: Path | None) -> str:
    """The format given, else the output's (.xlsx), else CSV; XLSX only to a file, and a file named after
    its format (the import refuses a CSV named .xlsx)."""
    suffix = output.suffix.lower().lstrip(".") if output is not None else None
    chosen = given or ("xlsx" if suffix == "xlsx" else "csv")
    if chosen == "xlsx" and output is None:
        raise UsageError(message("export_xlsx_needs_output", current_settings().lang))
    if suffix in FORMATS and suffix != chosen:
        raise UsageError(message("export_format_mismatch", current_settings().lang, path=output, format=chosen))
    return chosen


def format_option(function):
    return click.option("--format", "given_format", type=click.Choice(FORMATS),
                        help="csv (';', UTF-8) or xlsx. Default: the --output file's extension, else csv.")(function)


def output_option(function):
    return click.option("--output", type=click.Path(path_type=Path, dir_okay=False),
                        help="The file to write (default: CSV on stdout).")(function)


@click.command("export")
@click.argument("profile")
@format_option
@click.option("--account", help="Only the rows of this account (slug): its own and those its imports wrote last.")
@output_option
@json_option
def export_command(profile: str, given_format: str | None, account: str | None, output: Path | None,
                   as_json: bool) -> None:
    """Write the rows of PROFILE's table in the profile's column names: edit the file and import it again."""
    chosen = known_profile(profile)
    lang = current_settings().lang
    file_type = file_format(given_format, output)
    if as_json and output is None:
        raise UsageError(message("export_json_needs_output", lang))
    require_migrated()
    with app_engine() as engine:
        account_id = account_id_of(engine, account)
        target = output if output is not None else sys.stdout
        try:
            rows = export_rows(engine, chosen, target, file_type, account_id)
        except BaseException as exc:
            if output is not None:
                output.unlink(missing_ok=True)  # no half-written file
            if isinstance(exc, UnwritableCell):
                raise UsageError(message("export_unwritable_cell", lang, line=exc.line, column=exc.column)) from None
            raise
    if output is None:
        return
    if as_json:
        echo_json({"profile": chosen.name, "format": file_type, "rows": rows, "path": str(output)})
    else:
        click.echo(message("export_written", lang, rows=rows, profile=chosen.name, path=output))
