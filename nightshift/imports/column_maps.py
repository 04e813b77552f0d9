"""Column maps: headers a file writes that match no accepted spelling, with the field each one means.

An import follows two, the command's over the account's for the same header:
- the account's `imports.column_maps.<slug>` (YAML), for every file of the account: an entry whose
  header a file lacks, or whose field the file's profile lacks, is left out (one map serves all its
  files, of any profile);
- the command's `nightshift import --map "Raison sociale=nom"` (Settings.column_map), for its one file:
  its field must be one of the file's profile and its header in the file, or the import is refused.
Headers match as the spellings do (case, accents, spaces, `-` and `_` aside).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nightshift.config import ConfigError, Settings
from nightshift.imports.messages import Rejection, message
from nightshift.imports.profiles import PROFILES, Profile
from nightshift.imports.values import normalize_header


class ColumnMapRefused(Rejection):
    """A column map the import cannot follow: the user fixes the map (bad usage), not the file."""


def known_fields(profile: Profile | None, lang: str) -> str:
    """The fields a map may name: the profile's, or every profile's when none is chosen."""
    profiles = [profile] if profile is not None else PROFILES.values()
    return message("summary_separator", lang).join(
        message("map_profile_fields", lang, profile=p.name, fields=", ".join(p.field_names)) for p in profiles)


def _check_field(header: str, name: str, profile: Profile | None, lang: str) -> None:
    if profile is None and not any(name in p.field_names for p in PROFILES.values()):
        raise ColumnMapRefused("map_unknown_field_any", lang, header=header, field=name, known=known_fields(None, lang))
    if profile is not None and name not in profile.field_names:
        raise ColumnMapRefused("map_unknown_field", lang, header=header, field=name, profile=profile.name,
                               known=known_fields(profile, lang))


def parse_map_options(texts: Iterable[str], profile: Profile | None, lang: str) -> dict[str, str]:
    """`--map` values (`header=field`, the header as the file writes it) as {header: field}, each field
    one of the profile's (of any profile when none is chosen)."""
    column_map: dict[str, str] = {}
    for text in texts:
        header, equals, name = (part.strip() for part in text.rpartition("="))
        if not (equals and header and name):
            raise ColumnMapRefused("map_malformed", lang, value=text)
        _check_field(header, name, profile, lang)
        column_map[header] = name
    return column_map


def check_column_maps(column_maps: Mapping[str, Mapping[str, str]]) -> None:
    """`imports.column_maps`: every entry names a field of some profile (config checks the shape); a
    ConfigError names the key and the known fields."""
    every_field = {name for p in PROFILES.values() for name in p.field_names}
    for account, column_map in column_maps.items():
        for header, name in column_map.items():
            if name not in every_field:
                raise ConfigError(f"imports.column_maps.{account}.{header}: {name!r} is not a field of any profile "
                                  f"(known: {known_fields(None, 'en')})")


@dataclass(frozen=True)
class ImportColumnMap:
    """The column maps one import follows."""

    account: dict[str, str]
    command: dict[str, str]

    @classmethod
    def of(cls, settings: Settings, account_slug: str | None) -> ImportColumnMap:
        check_column_maps(settings.imports.column_maps)
        account = settings.imports.column_maps.get(account_slug, {}) if account_slug else {}
        return cls(dict(account), dict(settings.column_map))

    def applied_to(self, profile: Profile) -> Profile:
        # A header the command maps is the command's in every profile, even one without its field.
        commanded = {normalize_header(header) for header in self.command}
        account = {header: name for header, name in self.account.items() if normalize_header(header) not in commanded}
        return profile.with_headers({**account, **self.command})

    def profiles(self) -> list[Profile]:
        """Every profile reading the mapped headers: detection scores them as it scores spellings."""
        return [self.applied_to(p) for p in PROFILES.values()]

    def check(self, profile: Profile, header: list[str], file: str, lang: str) -> None:
        """The command's map fits the file: each field is one of its profile's, each header is in it."""
        for mapped, name in self.command.items():
            _check_field(mapped, name, profile, lang)
        present = {normalize_header(cell) for cell in header}
        absent = [mapped for mapped in self.command if normalize_header(mapped) not in present]
        if absent:
            raise ColumnMapRefused("map_header_absent", lang, file=file, absent=", ".join(absent),
                                   headers=", ".join(header))
