"""`imports undo` in the core: what an import created goes, what a later import changed, what other rows
point to and what it only updated stay, and say so. Both backends."""

from pathlib import Path

import pytest
import sqlalchemy as sa

from nightshift.db.schema import businesses, categories, imports
from nightshift.imports import intake
from nightshift.imports.profiles import PROFILES
from nightshift.imports.service import ImportOptions, run_import
from nightshift.imports.undo import UndoRefused, undo_import

HEADER = "nom;siret;categorie;ville"


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def imported(engine, settings, path: Path, *, dry_run: bool = False):
    """The file imported as an upload is: registered in the import log, then run."""
    upload = intake.Upload(path, PROFILES["businesses"], None)
    import_id = intake.register(engine, upload, settings, detect_duplicates=False).import_id
    return run_import(engine, path, settings, ImportOptions(profile="businesses", dry_run=dry_run),
                      import_id=import_id)


def names(engine, table) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.name)).scalars())


def kept(outcome) -> dict[tuple[str, str], tuple[int, list[str]]]:
    return {(k.table, k.reason): (k.count, k.keys) for k in outcome.kept}


@pytest.fixture
def two_imports(db, settings, tmp_path):
    """A first import of three businesses in two new categories; a second one that changes one of them,
    adds a business in one of those categories and adds a category of its own."""
    first = imported(db, settings, write(tmp_path / "premier.csv",
                                         "Boulangerie Dupont;73282932000074;Boulangerie;Paris",
                                         "Garage Martin;55210055400013;Garage;Lyon",
                                         "Garage Petit;44306184100047;Garage;Nantes"))
    second = imported(db, settings, write(tmp_path / "second.csv",
                                          "Garage Martin;55210055400013;Garage;Villeurbanne",
                                          "Boulangerie Roux;40483304800022;Boulangerie;Lille",
                                          "Fleurs Rose;52081445000018;Fleuriste;Nice"))
    assert (first.inserted, second.inserted, second.updated) == (3, 2, 1)
    return first.import_id, second.import_id


def test_undo_deletes_what_the_import_created_and_no_later_import_changed(db, two_imports):
    first, _ = two_imports
    outcome = undo_import(db, first)
    # Garage Martin was changed by the second import, the Boulangerie category holds its Boulangerie Roux.
    assert outcome.deleted == {"businesses": 2}
    assert names(db, businesses) == {"Garage Martin", "Boulangerie Roux", "Fleurs Rose"}
    assert kept(outcome) == {("businesses", "changed_later"): (1, ["siret:55210055400013"]),
                             ("categories", "referenced"): (2, ["boulangerie", "garage"])}
    assert names(db, categories) == {"Boulangerie", "Garage", "Fleuriste"}
    with db.connect() as conn:
        assert conn.execute(sa.select(imports.c.undone_at).where(imports.c.id == first)).scalar() is not None


def test_undo_of_the_later_import_keeps_the_rows_it_only_updated(db, two_imports):
    _, second = two_imports
    outcome = undo_import(db, second)
    assert outcome.deleted == {"businesses": 2, "categories": 1}
    # Garage Martin existed before: its earlier values were not kept, so it stays as the second import left it.
    assert kept(outcome) == {("businesses", "updated_only"): (1, ["siret:55210055400013"])}
    assert names(db, businesses) == {"Boulangerie Dupont", "Garage Martin", "Garage Petit"}
    assert names(db, categories) == {"Boulangerie", "Garage"}


def test_a_dry_run_gives_the_same_figures_and_changes_nothing(db, two_imports):
    first, _ = two_imports
    before = names(db, businesses), names(db, categories)
    dry = undo_import(db, first, dry_run=True)
    assert (names(db, businesses), names(db, categories)) == before
    with db.connect() as conn:
        assert conn.execute(sa.select(imports.c.undone_at).where(imports.c.id == first)).scalar() is None
    real = undo_import(db, first)
    assert (dry.deleted, kept(dry), dry.dry_run) == (real.deleted, kept(real), True)


def test_undo_is_refused_twice_and_for_imports_that_wrote_nothing(db, settings, tmp_path, two_imports):
    first, _ = two_imports
    undo_import(db, first)
    with pytest.raises(UndoRefused) as again:
        undo_import(db, first)
    assert again.value.code == "undo_already_undone"
    dry = imported(db, settings, write(tmp_path / "essai.csv", "Atelier Blanc;38012986600014;Atelier;Paris"),
                   dry_run=True)
    with pytest.raises(UndoRefused) as of_dry_run:
        undo_import(db, dry.import_id)
    assert (of_dry_run.value.code, of_dry_run.value.params["status"]) == ("undo_nothing_written", "received")
    with pytest.raises(UndoRefused) as unknown:
        undo_import(db, 999_999)
    assert unknown.value.code == "undo_unknown_import"
