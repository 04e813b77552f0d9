"""Files as users damage them, made by the tests that upload them."""

from io import BytesIO

from openpyxl import Workbook


def truncated_xlsx(rows: int = 2000) -> bytes:
    """A cities workbook cut in the middle, as an interrupted download leaves it."""
    workbook = Workbook()
    workbook.active.append(["nom", "code_postal"])
    for i in range(rows):
        workbook.active.append([f"Ville {i}", f"{10000 + i}"])
    buffer = BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]
