"""Rendered QR codes and barcodes decode back to exactly what was encoded (zxing-cpp)."""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from citywallet.merchant import emv, images, paycode
from citywallet.merchant.emv import MerchantCode

KEY = bytes(range(32))
SVG = "{http://www.w3.org/2000/svg}"

CODE = MerchantCode(
    merchant_id="mch_N8rY2kq0VfZ1tLx5aB3c",
    store_id="sto_Qw4Er5Ty6Ui7Op8As9Df",
    mcc="5812",
    merchant_name="LAO WANG NOODLES",
    merchant_city="BEIJING",
    name_zh="老王牛肉面馆（王府井店）",
    city_zh="北京",
    amount=123_456,
    order_ref="ord_Zx1Cv2Bn3Mm4Kk5Jj6Hh",
    terminal="TILL-3",
)


def decode(image: Image.Image) -> list[zxingcpp.Barcode]:
    return list(zxingcpp.read_barcodes(image))


def decode_png(png: bytes) -> str:
    # QR only, as the app's photo scan asks: zxing may also "see" a Codabar in the modules.
    with Image.open(io.BytesIO(png)) as image:
        found = list(
            zxingcpp.read_barcodes(
                image.convert("L"), formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
            )
        )
    assert len(found) == 1
    assert found[0].format == zxingcpp.BarcodeFormat.QRCode
    return str(found[0].text)


def rasterise_segno_svg(svg: str, pixels_per_module: int = 4) -> Image.Image:
    """Draw segno's single path (``M x y``, ``m dx dy``, ``h len`` strokes of width 1)."""
    root = ET.fromstring(svg)
    path = root.find(f"{SVG}path")
    assert path is not None
    transform = re.fullmatch(r"scale\((\d+)\)", path.get("transform", "scale(1)"))
    assert transform is not None
    scale = float(transform.group(1))
    size = round(float(root.get("width", "0")) / scale)
    image = Image.new("L", (size * pixels_per_module, size * pixels_per_module), 255)
    draw = ImageDraw.Draw(image)
    x = y = 0.0
    for command, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.get("d", "")):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        else:
            row = int(y)  # the stroke is centred on y + 0.5
            end = x + float(a)
            draw.rectangle(
                (
                    x * pixels_per_module,
                    row * pixels_per_module,
                    end * pixels_per_module - 1,
                    (row + 1) * pixels_per_module - 1,
                ),
                fill=0,
            )
            x = end
    return image


def rasterise_barcode_svg(svg: str, pixels_per_mm: int = 20) -> Image.Image:
    """Draw python-barcode's bars (``rect`` elements in millimetres) on white."""
    root = ET.fromstring(svg)

    def mm(value: str) -> float:
        return float(value.removesuffix("mm")) * pixels_per_mm

    image = Image.new(
        "L", (round(mm(root.get("width", ""))), round(mm(root.get("height", "")))), 255
    )
    draw = ImageDraw.Draw(image)
    for rect in root.iter(f"{SVG}rect"):
        if "black" not in rect.get("style", ""):
            continue  # the white background
        x, y = mm(rect.get("x", "")), mm(rect.get("y", ""))
        w, h = mm(rect.get("width", "")), mm(rect.get("height", ""))
        draw.rectangle((round(x), round(y), round(x + w) - 1, round(y + h) - 1), fill=0)
    return image


# --- QR -----------------------------------------------------------------------------------


def test_emv_payload_with_chinese_names_round_trips_through_png() -> None:
    payload = emv.build(CODE, key=KEY)
    assert not payload.isascii()
    decoded = decode_png(images.qr_png(payload))
    assert decoded == payload
    assert emv.parse(decoded, key=KEY) == CODE


def test_svg_draws_the_same_symbol() -> None:
    payload = emv.build(CODE, key=KEY)
    svg = images.qr_svg(payload, scale=3)
    assert svg.startswith("<?xml")
    found = decode(rasterise_segno_svg(svg))
    assert [f.text for f in found] == [payload]
    with Image.open(io.BytesIO(images.qr_png(payload, scale=3))) as png:
        assert png.size == (int(ET.fromstring(svg).get("width", "0")),) * 2


def test_png_size_follows_the_scale_and_quiet_zone() -> None:
    static = dataclasses.replace(
        CODE, amount=None, order_ref=None, terminal=None, name_zh="", city_zh=""
    )
    payload = emv.build(static, key=KEY)
    assert payload.isascii()
    small, large = images.qr_png(payload, scale=2), images.qr_png(payload, scale=6)
    with Image.open(io.BytesIO(small)) as a, Image.open(io.BytesIO(large)) as b:
        assert a.size[0] * 3 == b.size[0]
        modules = a.size[0] // 2 - 2 * images.QUIET_ZONE
    assert (modules - 17) % 4 == 0  # a regular QR symbol: 21, 25, 29, … modules


def test_short_payloads_are_never_micro_qr() -> None:
    with Image.open(io.BytesIO(images.qr_png("1"))) as image:
        found = decode(image.convert("L"))
    assert [(f.format, f.text) for f in found] == [(zxingcpp.BarcodeFormat.QRCode, "1")]


def test_nothing_to_encode() -> None:
    with pytest.raises(ValueError, match="nothing"):
        images.qr_png("")


ans = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
chinese = st.text(st.sampled_from("北京上海广州深圳老王面馆咖啡茶餐厅便利店超市药房"), min_size=1)


@given(
    st.text(ans, min_size=1, max_size=25),
    st.text(ans, min_size=1, max_size=15),
    chinese.map(lambda s: s[:25]),
    chinese.map(lambda s: s[:15]),
    st.none() | st.integers(1, 9_999_999_999),
)
@settings(max_examples=15, deadline=None)
def test_any_emv_code_round_trips_through_png(
    name: str, city: str, name_zh: str, city_zh: str, amount: int | None
) -> None:
    code = MerchantCode(
        merchant_id="mch_N8rY2kq0VfZ1tLx5aB3c",
        store_id="sto_Qw4Er5Ty6Ui7Op8As9Df",
        mcc="5411",
        merchant_name=name,
        merchant_city=city,
        name_zh=name_zh,
        city_zh=city_zh,
        amount=amount,
        order_ref=None if amount is None else "ord_Zx1Cv2Bn3Mm4Kk5Jj6Hh",
    )
    payload = emv.build(code, key=KEY)
    assert decode_png(images.qr_png(payload, scale=4)) == payload


# --- payment codes: QR and Code 128 --------------------------------------------------------


def test_payment_code_round_trips_through_qr_and_barcode() -> None:
    code = paycode.generate(paycode.new_secret(), "12345678", 1_700_000_000)
    assert decode_png(images.qr_png(code)) == code
    svg = images.barcode_svg(code)
    assert f">{code}</text>" in svg  # the digits are printed under the bars
    found = decode(rasterise_barcode_svg(svg))
    assert [(f.format, f.text) for f in found] == [(zxingcpp.BarcodeFormat.Code128, code)]
    assert paycode.parse(str(found[0].text)) == ("12345678", code[10:18])


@given(st.integers(1, 10**8 - 1), st.floats(0, 4_102_444_800))
@settings(max_examples=10, deadline=None)
def test_any_payment_code_round_trips_through_the_barcode(slot: int, at: float) -> None:
    code = paycode.generate(paycode.new_secret(), f"{slot:08d}", at)
    found = decode(rasterise_barcode_svg(images.barcode_svg(code)))
    assert [f.text for f in found] == [code]


@pytest.mark.parametrize("code", ["", "付款码", "88\n12"])
def test_barcode_refuses_what_code_128_cannot_carry(code: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        images.barcode_svg(code)
