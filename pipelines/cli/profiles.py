"""`nightshift profiles`: what can be imported; `profiles show P`, `profiles template P`."""

import sys
from pathlib import Path
from typing import Any

import click

from nightshift.imports.export import write_template
from nightshift.imports.messages import message
from nightshift.imports.profiles import PROFILES, Field, Profile
from pipelines.cli.export import file_format, format_option, known_profile, output_option
from pipelines.cli.runner import current_settings, echo_json, json_option


def _text(code: str, **params: object) -> str:
    return message(code, current_settings().lang, **params)


def required_columns(profile: Profile) -> list[str]:
    """What a file must have: a column, or one of a group ("nom | villes"), as the file writes them."""
    return [" | ".join(f.name for f in group) for group in profile.missing_required([])]


def optional_columns(profile: Profile) -> list[str]:
    needed = {f.name for group in profile.missing_required([]) for f in group}
    return [f.name for f in profile.fields if f.name not in needed]


def _listing(profile: Profile) -> dict[str, Any]:
    return {"name": profile.name, "required": required_columns(profile), "optional": optional_columns(profile)}


def _column(field: Field) -> dict[str, Any]:
    return {"name": field.name, "spellings": list(field.spellings), "kind": field.kind, "required": field.required,
            "max_length": field.max_length, "min_value": field.min_value, "max_value": field.max_value,
            "letter_or_digit": field.names_row}


def _rules(field: Field) -> list[str]:
    rules = [_text(f"profiles_kind_{field.kind}")]
    if field.max_length is not None:
        rules.append(_text("profiles_rule_max_length", max_length=field.max_length))
    if field.min_value is not None and field.max_value is not None:
        rules.append(_text("profiles_rule_range", min_value=field.min_value, max_value=field.max_value))
    if field.names_row:
        rules.append(_text("profiles_rule_letter_or_digit"))
    return rules


def _described(field: Field) -> list[str]:
    lines = [f"  {field.name}: {', '.join(_rules(field))}"]
    if field.aliases:
        lines.append("    " + _text("profiles_spellings", spellings=", ".join(field.spellings)))
    return lines


@click.group("profiles", invoke_without_command=True)
@json_option
@click.pass_context
def profiles(ctx: click.Context, as_json: bool) -> None:
    """The import profiles with their required and optional columns."""
    if ctx.invoked_subcommand is not None:
        return
    listing = [_listing(p) for p in PROFILES.values()]
    if as_json:
        echo_json(listing)
        return
    for entry in listing:
        click.echo(_text("profiles_line", profile=entry["name"], required=", ".join(entry["required"]) or "—",
                         optional=", ".join(entry["optional"]) or "—"))


@profiles.command("show")
@click.argument("profile")
@json_option
def show(profile: str, as_json: bool) -> None:
    """PROFILE's columns: the spellings a file may use, their type and rules."""
    chosen = known_profile(profile)
    if as_json:
        echo_json({**_listing(chosen), "version": chosen.version, "description": chosen.description,
                   "columns": [_column(f) for f in chosen.fields]})
        return
    lines = [_text("profiles_heading", profile=chosen.name, version=chosen.version), _text("profiles_required")]
    shown: set[str] = set()
    for group in chosen.missing_required([]):
        if len(group) > 1:
            lines.append("  " + _text("profiles_one_of", columns=" | ".join(f.name for f in group)))
        for field in group:
            if field.name not in shown:
                shown.add(field.name)
                lines.extend(_described(field))
    lines.append(_text("profiles_optional"))
    lines.extend(line for field in chosen.fields if field.name not in shown for line in _described(field))
    click.echo("\n".join(lines))


@profiles.command("template")
@click.argument("profile")
@format_option
@output_option
def template(profile: str, given_format: str | None, output: Path | None) -> None:
    """An empty PROFILE file to fill: every column and one example row, which imports as it is."""
    chosen = known_profile(profile)
    file_type = file_format(given_format, output)
    write_template(chosen, output if output is not None else sys.stdout, file_type)
    if output is not None:
        click.echo(_text("profiles_template_written", profile=chosen.name, path=output))
