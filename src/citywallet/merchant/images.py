"""Rendering codes as images: QR (segno) for EMV payloads and payment codes, Code 128 barcodes.

Rendering is separate from the codecs (emv.py, paycode.py) so those stay text-in, text-out.
QR codes use error correction level M at least (segno raises it for free when the symbol
size allows; printed counter codes get scuffed) and never Micro QR, which many scanners
cannot read. A payload with Chinese text is encoded as UTF-8 bytes without an ECI marker, as
Chinese wallets expect; a pure-ASCII payload lets segno choose the most compact mode.

The barcode is SVG only: python-barcode's PNG writer needs Pillow, which is not a runtime
dependency. Browsers and printers scale SVG without blurring the bars anyway.
"""

from __future__ import annotations

import io

import segno
from barcode import Code128
from barcode.writer import SVGWriter

QUIET_ZONE = 4  # modules of white border: the QR specification's minimum


def _qr(payload: str) -> segno.QRCode:
    if not payload:
        raise ValueError("nothing to encode")
    encoding = None if payload.isascii() else "utf-8"
    return segno.make(payload, error="m", micro=False, encoding=encoding)


def qr_png(payload: str, *, scale: int = 8) -> bytes:
    """``payload`` as a black-on-white QR code PNG, ``scale`` pixels per module."""
    buffer = io.BytesIO()
    _qr(payload).save(buffer, kind="png", scale=scale, border=QUIET_ZONE)
    return buffer.getvalue()


def qr_svg(payload: str, *, scale: int = 8) -> str:
    """``payload`` as a QR code SVG document, ``scale`` user units per module."""
    buffer = io.BytesIO()
    _qr(payload).save(buffer, kind="svg", scale=scale, border=QUIET_ZONE, title=None)
    return buffer.getvalue().decode("utf-8")


def barcode_svg(code: str) -> str:
    """``code`` as a Code 128 barcode SVG with the digits printed under the bars."""
    if not code or not code.isascii() or not code.isprintable():
        raise ValueError("Code 128 here encodes printable ASCII only")
    rendered = Code128(code, writer=SVGWriter()).render()
    return bytes(rendered).decode("utf-8")
