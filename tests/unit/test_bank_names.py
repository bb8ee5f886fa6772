"""Cards as people name them (wallet/banknames.py): 工商银行(0000) / ICBC (0000)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from citywallet.wallet import banknames
from citywallet.wallet.rules import BINS

last_fours = st.text(alphabet="0123456789", min_size=4, max_size=4)


def test_the_short_form_with_the_last_four() -> None:
    assert banknames.card_label("ICBC", "0000", "zh_CN") == "工商银行(0000)"
    assert banknames.card_label("ICBC", "0000", "en") == "ICBC (0000)"
    assert banknames.card_label("PSBC", "1234", "zh_CN") == "邮储银行(1234)"
    assert banknames.card_label("BOC", "9876", "zh_CN") == "中国银行(9876)"


def test_full_names_as_card_rows_keep_them_are_found() -> None:
    assert banknames.card_label("Industrial and Commercial Bank of China", "0000", "zh_CN") == (
        "工商银行(0000)"
    )
    assert banknames.card_label("中国建设银行", "5678", "zh_CN") == "建设银行(5678)"
    assert banknames.card_label(" china merchants bank ", "1111", "en") == "CMB (1111)"


def test_every_bank_a_card_can_be_bound_at_has_a_chinese_short_name() -> None:
    for info in BINS.values():
        for key in (info.code, info.name, info.name_zh):
            found = banknames.find(key)
            assert found is not None, key
            assert found.code == info.code
            assert len(found.short_zh) == 4  # 工商银行, 中国银行, 邮储银行 …


@given(st.sampled_from(banknames.BANKS), last_fours)
def test_a_label_is_the_short_name_and_the_last_four(bank: banknames.BankName, last4: str) -> None:
    assert banknames.card_label(bank.code, last4, "zh_CN") == f"{bank.short_zh}({last4})"
    assert banknames.card_label(bank.full_en, last4, "en") == f"{bank.short_en} ({last4})"


@given(st.text(min_size=1, max_size=20).filter(lambda s: banknames.find(s) is None), last_fours)
def test_an_unknown_bank_keeps_its_own_name(name: str, last4: str) -> None:
    assert banknames.card_label(name, last4, "zh_CN") == f"{name.strip()}({last4})"
