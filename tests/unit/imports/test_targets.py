from datetime import date

import numpy as np
import pandas as pd

from nightshift.imports.profiles import PROFILES
from nightshift.imports.targets import CATEGORY_PARENTS, SUBCATEGORY_PARENTS, TARGETS, build_rows, content_hash, target
from nightshift.imports.validate import ColumnMapping, validate_chunk


def _hash_as_first_stored(frame: pd.DataFrame) -> pd.Series:
    """The content hash as imports have always stored it: hash_pandas_object of the rows as text."""
    as_text = frame.astype(object).where(frame.notna(), "\x00").astype(str)
    hashed = pd.util.hash_pandas_object(as_text, index=False, categorize=False).to_numpy(dtype=np.uint64)
    return pd.Series([f"{h:016x}" for h in hashed], index=frame.index)


def test_content_hash_keeps_the_values_stored_by_earlier_imports():
    n = 6_000
    frame = pd.DataFrame({
        "name": [f"Société n°{i}" for i in range(n)],  # distinct values
        "city": pd.Series(["Lyon", None, "Saint-Étienne"] * (n // 3), dtype=object),  # repeated, some missing
        "naf_code": pd.Series(["62.01Z"] * n, dtype="str"),
        "latitude": pd.Series([45.75, None, 4.5e-3] * (n // 3), dtype=object),
        "founded_on": pd.Series([date(2020, 1, 2), None, date(1999, 12, 31)] * (n // 3), dtype=object),
        "created": pd.to_datetime(pd.Series(["2021-03-04", None, "2022-05-06"] * (n // 3))),
        "is_active": pd.array([True, None, False] * (n // 3), dtype="boolean"),
        "population": pd.array([1200, None, 3] * (n // 3), dtype="Int64"),
        "description": pd.Series([None] * n, dtype=object),  # a column the file does not fill
        "mixed": pd.Series([1, True, None] * (n // 3), dtype=object),  # 1 == True, yet "1" != "True"
    }, index=np.arange(10, 10 + n))
    for rows in (frame, frame.head(5), frame.head(0)):
        assert content_hash(rows).equals(_hash_as_first_stored(rows))


def test_content_hash_values_are_those_stored_in_existing_databases():
    """Downstream work compares stored hashes: the same rows must keep hashing to these values."""
    frame = pd.DataFrame({
        "name": ["Société n°1", "Le Zinc", "北京饭店", None],
        "latitude": pd.Series([45.75, None, -0.5, 4.5e-3], dtype=object),
        "founded_on": pd.Series([date(2020, 1, 2), None, date(1999, 12, 31), None], dtype=object),
        "is_active": pd.array([True, None, False, True], dtype="boolean"),
        "population": pd.array([1200, None, 3, 0], dtype="Int64"),
        "description": pd.Series([None] * 4, dtype=object),
    })
    assert list(content_hash(frame)) == ["c4c33402e7299e1c", "81379f4f6b064757", "6a90f0316bad2b7e", "30fe16d22c2f16c4"]

    businesses = _built("businesses", {"nom": ["Le Zinc", "Café"], "siret": ["73282932000074", None],
                                       "code_postal": ["69001", "69002"], "latitude": ["45,75", None],
                                       "date_creation": ["02/01/2020", None], "is_active": ["oui", None],
                                       "categorie": ["Bars", None]})
    assert list(businesses["businesses"]["content_hash"]) == ["6beb3d6f0a0cb084", "6cfea5e470161d73"]
    cities = _built("cities", {"villes": ["Lyon (69001)", "Nîmes (30000)"], "population": ["500000", None]})
    assert list(cities["cities"]["content_hash"]) == ["9b501273a5a0b7e4", "0dfee7d7b6d06f17"]
    clients = _built("clients", {"telephone": ["70 12 34 56"], "prenom": ["Awa"]})
    # Clients gained `city` (migration 0009): their stored hashes change once, so each client's next import
    # updates it (writing its city), then they hold again.
    assert list(clients["clients"]["content_hash"]) == ["42299df21a41faf4"]
    categories = _built("categories", {"nom": ["Restaurants", "Pizzeria"], "parent": [None, "Restaurants"],
                                       "ordre": ["1", "2"]})
    assert list(categories["categories"]["content_hash"]) == ["deea3f9522c1f041"]
    assert list(categories["subcategories"]["content_hash"]) == ["884497931c0cf9a3"]


def test_content_hash_changes_with_any_written_value():
    frame = pd.DataFrame({"name": ["A", "B"], "city": ["Lyon", None]})
    changed = frame.assign(city=["Lyon", "Nîmes"])
    before, after = content_hash(frame), content_hash(changed)
    assert before[0] == after[0] and before[1] != after[1]
    assert before.str.fullmatch(r"[0-9a-f]{16}").all()


def _built(profile_name: str, raw: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    profile = PROFILES[profile_name]
    frame = pd.DataFrame(raw, dtype=object)
    mapping = ColumnMapping.from_header(profile, list(frame.columns))
    result = validate_chunk(frame, np.arange(2, 2 + len(frame)), profile, mapping, phone_region="ML")
    return build_rows(profile, result.valid)


def test_a_key_that_is_a_column_of_the_table_is_staged_once():
    """Businesses are keyed by their natural_key column and clients by their phone: no `_key` copy of it
    (a column less to stage and sort). A key made for the import alone (cities: slug|postal code) is `_key`."""
    businesses = _built("businesses", {"nom": ["Le Zinc", "Café"], "siret": ["73282932000074", None],
                                       "code_postal": ["69001", "69002"]})["businesses"]
    assert target("businesses").key == "natural_key" and "_key" not in businesses.columns
    assert list(businesses["natural_key"]) == ["siret:73282932000074", "name:cafe|69002"]
    clients = _built("clients", {"telephone": ["70 12 34 56"]})["clients"]
    assert target("clients").key == "phone" and "_key" not in clients.columns
    cities = _built("cities", {"nom": ["Lyon"], "code_postal": ["69001"]})["cities"]
    assert target("cities").key == "_key" and list(cities["_key"]) == ["lyon|69001"]


def test_every_column_is_made_from_fields_of_the_profiles_that_fill_it():
    """Targets are declared with the field names of the profile of the same name (a categories file's
    sub-categories are read with the subcategories profile's names); parents with those of the profiles
    whose rows name them."""
    for name, declared in TARGETS.items():
        fields = {f.name for f in PROFILES[name].fields}
        assert {f for column in declared.columns.values() for f in column.fields} <= fields, name
        assert set(declared.lookup_columns) <= set(declared.columns), name
    for parents in (CATEGORY_PARENTS, SUBCATEGORY_PARENTS):
        assert {f for column in parents.columns.values() for f in column.fields} <= {"categorie", "sous_categorie"}


def test_a_file_states_the_columns_made_from_the_fields_it_has():
    """The merge updates only these columns of an existing row; the others keep their stored values."""
    businesses = target("businesses")
    columns = ["name", "siren", "siret", "email", "category_id", "subcategory_id"]
    assert businesses.stated_columns(columns, {"nom", "siret"}) == ["name", "siren", "siret"]
    # A file naming categories also says which sub-category (none: it clears the stored one).
    assert businesses.stated_columns(columns, {"nom", "siren", "categorie"}) == [
        "name", "siren", "category_id", "subcategory_id"]
    assert businesses.stated_columns(columns, {"nom", "sous_categorie"}) == ["name", "subcategory_id"]
    # A one-column `Nom (CP)` file names its cities as a file with nom does.
    cities = target("cities")
    assert cities.stated_columns(["name", "department", "population"], {"villes"}) == ["name"]
    assert cities.stated_columns(["name", "department"], {"nom", "code_postal", "departement"}) == [
        "name", "department"]
    subcategories = target("subcategories")
    assert subcategories.stated_columns(["name", "keywords", "sort_order"], {"nom", "parent", "ordre"}) == [
        "name", "sort_order"]  # a categories file has no keywords
