"""Writes the import corpus (tests/corpus/files/) deterministically: `python tests/corpus/make_corpus.py`.

The files are committed; this script documents how each was made and rebuilds the binary ones
(spreadsheets, garbage, truncated archive) byte for byte. Expected outcomes: tests/corpus/expected.json.
"""

import random
import re
import zipfile
from datetime import date, datetime
from pathlib import Path

from openpyxl import Workbook

FILES = Path(__file__).resolve().parent / "files"
FOX_HEADER = ("siren,nom,siret,nom_commercial,adresse,code_postal,ville_nom,naf_code,naf_libelle,telephone,"
              "email_contact,site_web,is_active")


def text(name: str, content: str, encoding: str = "utf-8") -> None:
    (FILES / name).write_bytes(content.encode(encoding))


def fixed_zip_times(path: Path) -> None:
    """Rewrite a zip with constant timestamps so the bytes do not depend on the day it was made (openpyxl
    stamps the save time into docProps/core.xml whatever the workbook's properties say)."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    entries = [(info, re.sub(rb"<dcterms:modified([^>]*)>[^<]*<", rb"<dcterms:modified\1>2024-01-01T00:00:00Z<", data)
                if info.filename == "docProps/core.xml" else data) for info, data in entries]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            info.date_time = (2024, 1, 1, 0, 0, 0)
            target.writestr(info, data)


def workbook(name: str, sheets: dict[str, list[list]], merges: dict[str, list[str]] | None = None) -> None:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        for cells in (merges or {}).get(title, []):
            sheet.merge_cells(cells)
    book.properties.created = book.properties.modified = datetime(2024, 1, 1)
    book.save(FILES / name)
    fixed_zip_times(FILES / name)


def csv_files() -> None:
    text("bom_utf8_clients.csv", "\ufefftelephone;prenom;nom;email\n70 12 34 56;Awa;Traoré;awa@exemple.ml\n"
         "+223 76-12-34-57;Moussa;Keïta;\n0022365123458;Fatoumata;Diarra;fatou@exemple.ml\n")
    text("cp1252_accents_businesses.csv",
         "nom;ville;code_postal;description\r\nL’Œuvre du Café;Besançon;25000;Menu à 12 € — cœur de ville\r\n"
         "Pâtisserie Noël;Nîmes;30000;Bûche « maison » à 25 €\r\n", "cp1252")
    text("decimal_commas_cities.csv",
         "nom;code_postal;latitude;longitude;population\nLyon;69001;45,7640;4,8357;515\u00a0695\n"
         "Villeurbanne;69100;45,7719;4,8902;150\u202f659\nBron;69500;45,7386;4,9131;42 000\n")
    text("quoted_newlines_businesses.csv",
         'nom,code_postal,ville,description\n"Atelier Dupont",69002,Lyon,"Menuiserie, ébénisterie\n'
         'et restauration\nde meubles anciens"\nGarage du Centre,ABCDE,Lyon,Réparations\n'
         'Boulangerie Martin,01000,Bourg-en-Bresse,"Pain, viennoiseries"\n')
    text("crlf_cities.csv", "nom,code_postal\r\nAnnecy,74000\r\nChambéry,73000\r\nGrenoble,38000\r\n")
    text("cr_only_cities.csv", "nom;code_postal\rValence;26000\rMontélimar;2620X\rRomans-sur-Isère;26100\r")
    text("tab_delimited_cities.txt", "nom\tcode_postal\tdepartement\nDijon\t21000\tCôte-d'Or\n"
         "Beaune\t21200\tCôte-d'Or\n")
    text("pipe_delimited_cities.csv", "nom|code_postal|region\nBrest|29200|Bretagne\nQuimper|29000|Bretagne\n")
    text("missing_required_column_clients.csv", "prenom;nom;email\nAwa;Traoré;awa@exemple.ml\n")
    text("unknown_extra_columns_cities.csv",
         "nom;code_postal;couleur;commentaire\nTours;37000;bleu;ok\nBlois;41000;vert;\nAmboise;37400;;\n")
    text("empty.csv", "")
    text("header_only_cities.csv", "nom;code_postal;departement\n")
    text("duplicate_keys_cities.csv", "nom;code_postal;population\nMetz;57000;100\nNancy;54000;200\n"
         "Metz;57000;117000\nMETZ;57000;118000\n")
    text("formula_injection_clients.csv",
         'telephone;prenom;nom\n=1+2;"=HYPERLINK(""http://x.example"",""clic"")";Dupont\n'
         "70 11 22 33;@SUM(A1:A2);-Traoré\n76 11 22 34;+Awa;Keïta\n")
    text("nul_bytes_cities.csv", "nom;code_postal\nSaint-\x00Malo;35400\nRennes;350\x0000\nVannes;56000\n")
    text("field_100kb_businesses.csv",
         "nom;code_postal;description\nImprimerie Longue;75011;" + ("Texte très long. " * 6250) + "\n"
         "Imprimerie Courte;75012;court\n")
    text("over_size_limit_cities.csv", "nom;code_postal\nLille;59000\nRoubaix;59100\n")
    text("wordpress_terms_categories.csv",
         "Term ID,Term Name,Term Slug,Parent Name,Description\n1,Restaurants &amp; Bars,restaurants-bars,,\n"
         "2,Pizzerias,pizzerias,Restaurants &amp; Bars,Pizzas au feu de bois\n"
         "3,Artisanat d’art,artisanat-dart,,\n4,Céramique,ceramique,Artisanat d’art,\n")
    text("villes_cp_one_column_cities.csv", "Villes\nAmbérieu-en-Bugey (1500)\nBourg-en-Bresse (01000)\n"
         "Ville sans code\nSaint-Étienne (42000)\n")
    text("invalid_phones_clients.csv", "telephone;prenom\n70 12 34 56;Awa\n06 12 34 56 78;Jean\n"
         "13812345678;Wei\n+33 6 12 34 56 78;Claire\n+223 70-99-88-77;Moussa\n")
    text("bad_siret_businesses.csv",
         "nom;siren;siret;naf_code;is_active\nSociété A;732829320;73282932000074;6201Z;oui\n"
         "Société B;;73282932000075;1.11;non\nSociété C;404833048;73282932000074;62.01Z;oui\n"
         "Société D;;;620;peut-être\nSociété E;404 833 048;;1.11;non\nSociété F;;;62 01z;1\n")
    text("all_invalid_cities.csv", "nom;code_postal\nA;XYZ\nB;12\nC;ABCDE\n")
    text("unknown_profile.csv", "produit;prix;stock\nvis;0,10;5000\n")
    text("fox_export_businesses.csv",
         FOX_HEADER + "\n732829320,Boulangerie Dupont,73282932000074,Chez Dupont,12 rue de la Paix,1000,"
         "Bourg-en-Bresse,1071C,Boulangerie et boulangerie-pâtisserie,+33 4 74 00 00 00,contact@dupont.fr,"
         "www.dupont.fr,true\n")
    text("strict_mode_cities.csv", "nom;code_postal\nAgen;47000\nNérac;4760X\n")
    text("path_traversal_cities.csv", "nom;code_postal\nPau;64000\n")
    text("trailing_delimiter_cities.csv", "nom;code_postal;\nLyon;69001\nBron;69500\n")
    text("unclosed_quote_cities.csv", 'nom;code_postal\nLyon;69001\n"Bron;69500\nVénissieux;69200\n')
    (FILES / "bom_then_cp1252_cities.csv").write_bytes(
        b"\xef\xbb\xbfnom;code_postal\n" + "Béziers;34500\nSète;34200\n".encode("cp1252"))
    (FILES / "mixed_utf8_cp1252_cities.csv").write_bytes(
        "nom;code_postal\nBéziers;34500\nNîmes;30000\n".encode() + "L’Œuvre;30100\n".encode("cp1252"))
    (FILES / "truncated_utf16_cities.csv").write_bytes(
        "nom;code_postal\nLyon;69001\nBéziers;34500\n".encode("utf-16")[:-1])
    text("non_latin_names_businesses.csv", "nom;ville\n北京饭店;Paris\nΩmega Café;Lyon\n...;Lyon\n")


def spreadsheets() -> None:
    workbook("several_sheets_businesses.xlsx", {
        "Notes": [["Export du 03/02/2024"], ["Ne pas modifier"]],
        "Entreprises": [["nom", "code_postal", "ville"], ["Boucherie Sow", "69003", "Lyon"],
                        ["Épicerie Fine", "69006", "Lyon"]],
        "Archives": [["nom", "ancien_code"], ["Vieille Maison", "X1"]],
    })
    workbook("header_on_row_3_cities.xlsx", {
        "Villes": [["Liste des communes — Auvergne-Rhône-Alpes"], [None], ["nom", "code_postal", "population"],
                   ["Clermont-Ferrand", 63000, 147284], ["Vichy", 3200, 25000], ["Aurillac", 15000, "beaucoup"]],
    })
    workbook("merged_header_cells_cities.xlsx", {
        "Communes": [["nom", "Localisation", None], [None, "code_postal", "departement"],
                     ["Ajaccio", "20000", "Corse-du-Sud"], ["Bastia", "20200", "Haute-Corse"]],
    }, merges={"Communes": ["A1:A2", "B1:C1"]})
    workbook("excel_serial_dates_businesses.xlsx", {
        "Feuil1": [["nom", "code_postal", "date_creation", "latitude"],
                   ["Traiteur Bâ", 1000, 36526, 46.2052], ["Fromagerie", "01000", date(2015, 9, 15), "46,2"],
                   ["Sans date", 75001, None, None], ["Date folle", 75002, "31/02/2024", 12]],
    })
    good = FILES / "several_sheets_businesses.xlsx"
    (FILES / "xlsx_named_xls_businesses.xls").write_bytes(good.read_bytes())
    (FILES / "truncated.xlsx").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    ods()


def ods() -> None:
    rows = [["nom", "code_postal"], ["Bordeaux", "33000"], ["Mérignac", "33700"], ["Pessac", "3360"]]
    cells = "".join(
        "<table:table-row>" + "".join(
            f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'
            for value in row) + "</table:table-row>" for row in rows)
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Villes">{cells}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>")
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>")
    path = FILES / "gironde_cities.ods"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, method in (("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED),
                                   ("content.xml", content, zipfile.ZIP_DEFLATED),
                                   ("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            archive.writestr(info, data)


def garbage() -> None:
    generator = random.Random(20240203)
    (FILES / "binary_garbage.csv").write_bytes(bytes(generator.randrange(256) for _ in range(4096)))


if __name__ == "__main__":
    FILES.mkdir(exist_ok=True)
    csv_files()
    spreadsheets()
    garbage()
    print(f"{len(list(FILES.iterdir()))} files in {FILES}")
