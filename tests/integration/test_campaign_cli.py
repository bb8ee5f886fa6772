"""`citywallet campaign …`, `citywallet operators …` and `citywallet users attributes …`
against a real database (both engines): a campaign from a TOML spec file through the draw,
the draw file written and verified (and a tampered one refused), issuance, the report and
its CSV."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from citywallet import cli
from citywallet.api.app import create_app
from citywallet.campaign import drawcheck, lottery
from citywallet.campaign import service as campaigns
from citywallet.identity import attributes
from citywallet.platform.clock import now_us
from citywallet.platform.config import get_settings
from citywallet.platform.db import Database
from citywallet.runtime import Runtime
from citywallet.wallet.bank import sandbox_card_number
from tests.identity_support import resident_id
from tests.ledger_checks import TEST_KEYRING, assert_ledger_clean, test_encryptor
from tests.unit.test_campaign_lottery import _run_drawcheck
from tests.wallet_support import Person, make_resident, sandbox_bank, wallet_settings
from tests.web.test_app_account_pages import sign_in

HOUR = 3_600_000_000


@pytest.fixture
def runner(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI on the test database with the test keys (schema built from the models)."""
    key = base64.b64encode(TEST_KEYRING.keys["t1"]).decode()
    monkeypatch.setenv("CITYWALLET_DATABASE_URL", db.url)
    monkeypatch.setenv("CITYWALLET_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("CITYWALLET_MASTER_KEYS", f"t1:{key}")
    monkeypatch.setenv("CITYWALLET_SANDBOX_BANK_LATENCY_MS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(cli, "upgrade", lambda _url: None)  # the schema is built from the models
    monkeypatch.setattr(cli, "configure_logging", lambda **_kw: None)
    monkeypatch.setattr(cli.console, "width", 200)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()


def _toml(t0: int) -> str:
    return f"""
name = "罗湖区消费红包"
description = "CLI test"
funder_name = "深圳市罗湖区人民政府"
funder_bank_account = "{sandbox_card_number("0000", serial=9)}"
budget = 46600  # fen
prizes = [{{ amount = 20000, count = 2 }}, {{ amount = 6600, count = 1 }}]
registration_opens_at = {_iso(t0 - 4 * HOUR)}
registration_closes_at = {_iso(t0 - 3 * HOUR)}
draw_at = {_iso(t0 - 2 * HOUR)}
valid_from = {_iso(t0 - HOUR)}
valid_until = {_iso(t0 + HOUR)}
districts = ["罗湖区"]

[eligibility]
min_tier = 1
districts = ["罗湖区"]
"""


def test_campaign_commands(runner: CliRunner, db: Database, tmp_path: Path) -> None:
    enc, bank = test_encryptor(), sandbox_bank()
    settings = wallet_settings(tmp_path, db)
    people = [make_resident(db, settings, enc, bank, n, card_ending=None) for n in range(4)]
    t0 = now_us()

    # operators and attributes
    granted = runner.invoke(cli.app, ["operators", "grant", people[0].phone])
    assert granted.exit_code == 0, granted.output
    with db.uow(readonly=True) as uow:
        assert attributes.is_operator(uow, user_id=people[0].user_id)
    revoked = runner.invoke(cli.app, ["operators", "revoke", people[0].user_id])
    assert revoked.exit_code == 0, revoked.output
    with db.uow(readonly=True) as uow:
        assert not attributes.is_operator(uow, user_id=people[0].user_id)
    assert runner.invoke(cli.app, ["operators", "grant", "13999999999"]).exit_code == 1
    for person in people[:2]:
        done = runner.invoke(
            cli.app, ["users", "attributes", "set", person.user_id, "district=罗湖区", "si=sz"]
        )
        assert done.exit_code == 0, done.output
        assert "罗湖区" in done.output
    table = tmp_path / "registry.csv"
    numbers = [resident_id(sequence=f"{n + 1:03d}", birth=f"1990{n + 1:02d}15") for n in (2, 3)]
    table.write_text(
        "id_number,name,value\n"
        + "".join(f"{number},district,罗湖区\n" for number in numbers)
        + "110101199001011234,district,福田区\n",
        encoding="utf-8",
    )
    imported = runner.invoke(cli.app, ["users", "attributes", "import", str(table)])
    assert imported.exit_code == 0, imported.output
    assert "updated 2 residents; 1 ID numbers" in imported.output
    with db.uow(readonly=True) as uow:
        assert attributes.attributes_of(uow, user_id=people[3].user_id) == {"district": "罗湖区"}
    bad_pair = runner.invoke(cli.app, ["users", "attributes", "set", people[0].user_id, "x"])
    assert bad_pair.exit_code != 0

    # create from a spec file (a bad one is refused with the field named)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "x"}), encoding="utf-8")
    refused = runner.invoke(cli.app, ["campaign", "create", str(broken)])
    assert refused.exit_code == 1
    assert "budget" in refused.output
    spec = tmp_path / "luohu.toml"
    spec.write_text(_toml(t0), encoding="utf-8")
    created = runner.invoke(cli.app, ["campaign", "create", str(spec)])
    assert created.exit_code == 0, created.output
    with db.uow(readonly=True) as uow:
        (view,) = campaigns.list_campaigns(uow, include_draft=True)
    cid = view.id
    assert view.valid_until == t0 + HOUR  # exact to the microsecond
    assert view.prizes == [(20_000, 2), (6_600, 1)]
    listed = runner.invoke(cli.app, ["campaign", "list"])
    assert listed.exit_code == 0
    assert cid in listed.output
    assert "draft" in listed.output

    assert runner.invoke(cli.app, ["campaign", "open", cid]).exit_code == 0
    for person in people:
        db.transact(
            lambda uow, p=person: campaigns.register(
                uow, campaign_id=cid, user_id=p.user_id, now=t0 - 3 * HOUR - 1
            )
        )
    closed = runner.invoke(cli.app, ["campaign", "close", cid])
    assert closed.exit_code == 0, closed.output
    unfunded = runner.invoke(cli.app, ["campaign", "draw", cid])
    assert unfunded.exit_code == 1
    assert "campaign_not_funded" in unfunded.output
    funded = runner.invoke(cli.app, ["campaign", "fund", cid])
    assert funded.exit_code == 0, funded.output
    assert "funded" in funded.output
    drawn = runner.invoke(cli.app, ["campaign", "draw", cid])
    assert drawn.exit_code == 0, drawn.output

    draw_file = tmp_path / "draw.json"
    wrote = runner.invoke(
        cli.app, ["campaign", "verify-draw", "--campaign", cid, "--out", str(draw_file)]
    )
    assert wrote.exit_code == 0, wrote.output
    assert "the draw verifies" in wrote.output
    document = json.loads(draw_file.read_bytes())
    assert lottery.verify_draw(document) == []
    assert document["registrant_count"] == 4
    checked = runner.invoke(cli.app, ["campaign", "verify-draw", str(draw_file)])
    assert checked.exit_code == 0, checked.output
    loser = next(
        r
        for r in document["registrations"]
        if r not in {w["registration_id"] for w in document["winners"]}
    )
    document["winners"][0]["registration_id"] = loser
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document), encoding="utf-8")
    caught = runner.invoke(cli.app, ["campaign", "verify-draw", str(tampered)])
    assert caught.exit_code == 1
    assert "does NOT verify" in caught.output

    issued = runner.invoke(cli.app, ["campaign", "issue", cid, "--batch-size", "2"])
    assert issued.exit_code == 0, issued.output
    assert "issued 3 red packets" in issued.output
    early = runner.invoke(cli.app, ["campaign", "reclaim", cid])
    assert early.exit_code == 1
    assert "still_valid" in early.output

    export = tmp_path / "report.csv"
    shown = runner.invoke(cli.app, ["campaign", "report", cid, "--csv", str(export)])
    assert shown.exit_code == 0, shown.output
    assert "issued_amount" in shown.output
    assert "¥466.00" in shown.output
    rows = list(csv.reader(io.StringIO(export.read_text(encoding="utf-8"))))
    assert rows[0] == ["section", "key", "metric", "value"]
    table_rows = {(s, k, m): v for s, k, m, v in rows[1:]}
    assert table_rows["summary", "", "winners"] == "3"
    assert table_rows["summary", "", "registrations"] == "4"
    assert table_rows["resident_district", "罗湖区", "registrations"] == "4"
    missing = runner.invoke(cli.app, ["campaign", "report", "cmp_missing"])
    assert missing.exit_code == 1
    assert "campaign_not_found" in missing.output
    assert_ledger_clean(db)


def test_api_and_page_serve_the_cli_draw_file_byte_for_byte(
    runner: CliRunner, db: Database, tmp_path: Path
) -> None:
    enc, bank, t0 = test_encryptor(), sandbox_bank(), now_us()
    settings = wallet_settings(tmp_path, db)
    people = [make_resident(db, settings, enc, bank, n, card_ending=None) for n in range(4)]
    for person in people:  # a non-ASCII attribute, to show the bytes escape it
        db.transact(
            lambda uow, p=person: attributes.set_attributes(
                uow, user_id=p.user_id, values={"district": "罗湖区"}, source="operator:test"
            )
        )
    spec = tmp_path / "luohu.toml"
    spec.write_text(_toml(t0), encoding="utf-8")
    assert runner.invoke(cli.app, ["campaign", "create", str(spec)]).exit_code == 0
    with db.uow(readonly=True) as uow:
        (view,) = campaigns.list_campaigns(uow, include_draft=True)
    cid = view.id
    db.transact(lambda uow: campaigns.open_registration(uow, campaign_id=cid, actor="op"))
    for person in people:
        db.transact(
            lambda uow, p=person: campaigns.register(
                uow, campaign_id=cid, user_id=p.user_id, now=t0 - 3 * HOUR - 1
            )
        )
    for step in ("close", "fund", "draw"):
        done = runner.invoke(cli.app, ["campaign", step, cid])
        assert done.exit_code == 0, done.output
    out = tmp_path / "draw.json"
    wrote = runner.invoke(
        cli.app, ["campaign", "verify-draw", "--campaign", cid, "--out", str(out)]
    )
    assert wrote.exit_code == 0, wrote.output
    published = out.read_bytes()
    digest = hashlib.sha256(published).digest()
    assert published.endswith(b"}\n")
    assert published == lottery.dump_draw_file(json.loads(published))  # canonical

    runtime = Runtime(settings, db, enc)
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        outsider = Person(client, 70, card_ending=None)
        served = client.get(f"/v1/campaigns/{cid}/draw", headers=outsider.headers)
        sign_in(client, people[0])
        page = client.get(f"/app/campaigns/{cid}/draw.json")
    for answer in (served, page):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == published
        # RFC 9530: the SHA-256 anyone can quote, as base64 in Content-Digest
        assert answer.headers["content-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
        assert answer.headers["etag"] == f'"{digest.hex()}"'
    assert drawcheck.check_draw(json.loads(served.content)) == []
    (tmp_path / "served.json").write_bytes(served.content)
    checked = _run_drawcheck(tmp_path, "served.json", "--commitment", view.seed_commitment)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert_ledger_clean(db)


def test_the_documented_spec_file_is_valid() -> None:
    import re
    import tomllib

    from citywallet.campaign.schemas import CampaignCreate
    from citywallet.wallet.rules import luhn_valid

    docs = Path(__file__).resolve().parents[2] / "docs" / "campaigns.md"
    example = re.search(r"```toml\n(.*?)```", docs.read_text(encoding="utf-8"), re.S)
    assert example is not None
    body = CampaignCreate.model_validate(tomllib.loads(example.group(1)))
    spec = body.spec()
    assert spec.budget == sum(amount * count for amount, count in spec.prizes)
    assert luhn_valid(spec.funder_bank_account)
    assert spec.registration_opens_at == 1_602_172_800_000_000  # 2020-10-09 00:00 +08:00
