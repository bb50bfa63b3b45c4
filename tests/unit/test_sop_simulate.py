"""`siyu sop simulate` (golden timelines on a fake clock) and `siyu sop status` (seeded database counts)."""

# The golden outputs are whole timeline lines as ops read them; splitting them would hide the diff.
# ruff: noqa: E501

from __future__ import annotations

import asyncio
import datetime as dt
import textwrap
from pathlib import Path

import pytest

from bot import cli, cli_sop, playbooks, policy
from bot.clock import SHANGHAI
from bot.store import db
from bot.store.models import Enrollment, OutboxRow, SopLog

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """\
id: sim_check
name: 模拟测试
trigger: {stage_entered: 加微}
exit: {unsubscribed: true, tags_any: [已购]}
steps:
  - id: hello
    after: 1h
    content: {text: "{customer_name}您好，我是{brand}{store}的{guide_name}。"}
    route: [mass_task]
  - id: ask
    day: 1
    at: "10:00"
    content: {text: 宝宝多大啦？}
    route: [kf, mass_task]
    wait: 24h
    on_reply: thanks
    otherwise: tips
  - id: thanks
    after: 2h
    content: {text: 谢谢回复！}
    route: [guide_notify]
    next: end
  - id: tips
    day: 3
    at: "10:00"
    when: 'attributes.baby_age_months < 12'
    content:
      text: 给您一份喂养小抄。
      link: {title: 喂养小抄, url: "https://shop.example.com/feeding"}
    route: [mass_task]
"""

CUSTOMER = """\
id: wm_test
name: 小雨
guide: xiaolin
stage: 加微
attributes: {baby_birth_month: "2026-05"}
added_at: "2026-11-23 21:00"
"""

HEADER = """\
剧本 sim_check「模拟测试」 × 客户 小雨（wm_test，导购 小林·徐汇旗舰店，阶段 加微）
从 2026-11-23 周一 21:00 起模拟 5 天，不连接企业微信；免打扰 21:30–08:30，每天最多 1 条、每周最多 3 条（Asia/Shanghai）
2026-11-23 周一 21:00 第0天  报名：第一步 hello，11-23 22:00 到期
2026-11-23 周一 22:00 第0天  hello  顺延：免打扰时段（21:30–08:30），顺延到 11月24日 08:30
2026-11-24 周二 08:30 第1天  hello  发送（导购群发任务）：小雨您好，我是小禾母婴徐汇旗舰店的小林。
2026-11-24 周二 10:00 第1天  ask  顺延：客户今天已收到 1 条推送（上限 1），顺延到 11月25日 08:30
2026-11-25 周三 08:30 第2天  ask  发送（导购群发任务）：宝宝多大啦？；等待回应到 11-26 08:30
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """The test playbook and customer, written to files as ops would."""
    playbook, customer = tmp_path / "sim_check.yaml", tmp_path / "customer.yaml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    customer.write_text(CUSTOMER, encoding="utf-8")
    return playbook, customer


@pytest.fixture
def run_cli(settings_factory, monkeypatch, capsys):
    """Run `siyu sop ...` with test settings; returns (exit code, stdout, stderr)."""
    settings = settings_factory()
    monkeypatch.setattr(cli_sop, "load_settings", lambda path=None: settings)

    def run(*argv: str) -> tuple[int, str, str]:
        args = cli._parser().parse_args(["sop", *argv])
        code = args.func(args)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def simulate(run_cli, files: tuple[Path, Path], *extra: str) -> tuple[int, str, str]:
    playbook, customer = files
    return run_cli(
        "simulate",
        str(playbook),
        "--customer",
        str(customer),
        "--content-dir",
        str(ROOT / "content_library"),
        *extra,
    )


# ----------------------------------------------------------------------------------------- simulate


def test_reply_branch_with_quiet_hours_and_the_daily_cap(run_cli, files) -> None:
    code, out, err = simulate(run_cli, files, "--days", "5", "--replies", "day2 09:00 好的")
    assert (code, err) == (0, "")
    assert out == HEADER + textwrap.dedent(
        """\
        2026-11-25 周三 09:00 第2天  客户回复：“好的”
        2026-11-25 周三 09:00 第2天  ask  分支：客户回复了 → thanks（11-25 11:00 到期）
        2026-11-25 周三 11:00 第2天  thanks  顺延：客户今天已收到 1 条推送（上限 1），顺延到 11月26日 08:30
        2026-11-26 周四 08:30 第3天  thanks  发送（提醒导购发送）：谢谢回复！
        2026-11-26 周四 08:30 第3天  thanks  剧本结束：全部步骤已走完
        汇总：发送 3 条（导购群发任务 2，提醒导购发送 1）；顺延 3 次；跳过 0 步；结果：走完
        """
    )


def test_no_reaction_branch(run_cli, files) -> None:
    code, out, _ = simulate(run_cli, files, "--days", "5")
    assert code == 0
    assert out == HEADER + textwrap.dedent(
        """\
        2026-11-26 周四 08:30 第3天  ask  分支：等待期内没有回应 → tips（11-26 10:00 到期）
        2026-11-26 周四 10:00 第3天  tips  发送（导购群发任务）：给您一份喂养小抄。 ［链接：喂养小抄］
        2026-11-26 周四 10:00 第3天  tips  剧本结束：全部步骤已走完
        汇总：发送 3 条（导购群发任务 3）；顺延 2 次；跳过 0 步；结果：走完
        """
    )


def test_a_false_condition_skips_and_the_simulation_stops_at_days(run_cli, files) -> None:
    files[1].write_text(CUSTOMER.replace('attributes: {baby_birth_month: "2026-05"}\n', ""), encoding="utf-8")
    code, out, _ = simulate(run_cli, files, "--days", "5")
    assert code == 0
    assert "tips  跳过：条件不满足：attributes.baby_age_months < 12" in out
    _, out, _ = simulate(run_cli, files, "--days", "2")
    assert out.splitlines()[-2:] == [
        "2026-11-25 周三 21:00 第2天  模拟结束（2 天）：ask 仍在等待回应，2026-11-26 周四 08:30 到期",
        "汇总：发送 2 条（导购群发任务 2）；顺延 2 次；跳过 0 步；结果：进行中",
    ]


def test_click_and_unsubscribe(run_cli, files) -> None:
    # A click before any link went out is no click; "别发了" unsubscribes and the next decision exits.
    _, out, _ = simulate(run_cli, files, "--clicks", "day1 09:00", "--replies", "day1 09:30 别发了")
    assert out.splitlines()[-4:] == [
        "2026-11-24 周二 09:00 第1天  客户点击了链接（这次运行还没有发出链接，不算点击）",
        "2026-11-24 周二 09:30 第1天  客户回复：“别发了”（退订，营销推送停止；没有等待回应的步骤，不影响分支）",
        "2026-11-24 周二 10:00 第1天  ask  退出剧本：客户已退订",
        "汇总：发送 1 条（导购群发任务 1）；顺延 1 次；跳过 0 步；结果：退出",
    ]


def test_kf_route_within_the_window_and_start_option(run_cli, files) -> None:
    files[1].write_text(
        CUSTOMER + "kf: {open_kfid: wk_service, last_message_at: 'day0 10:00'}\n", encoding="utf-8"
    )
    _, out, _ = simulate(run_cli, files, "--days", "2", "--start", "2026-11-23 10:00")
    lines = out.splitlines()
    assert (
        lines[3]
        == "2026-11-23 周一 11:00 第0天  hello  发送（导购群发任务）：小雨您好，我是小禾母婴徐汇旗舰店的小林。"
    )
    # ask prefers kf: her kf message of day 0 10:00 keeps the window open until day 2 10:00.
    assert (
        lines[4] == "2026-11-24 周二 10:00 第1天  ask  发送（微信客服）：宝宝多大啦？；等待回应到 11-25 10:00"
    )


def test_shipped_new_contact_with_the_example_customer(run_cli) -> None:
    code, out, err = run_cli(
        "simulate",
        str(ROOT / "sop" / "new_contact.yaml"),
        "--customer",
        str(ROOT / "sop" / "examples" / "customer_new_mom.yaml"),
        "--content-dir",
        str(ROOT / "content_library"),
        "--days",
        "10",
        "--replies",
        "day2 09:00 宝宝8个月了",
    )
    assert (code, err) == (0, "")
    assert out == textwrap.dedent(
        """\
        剧本 new_contact「新客培育」 × 客户 陈晓雨（wm_sim_new_mom，导购 小林·徐汇旗舰店，阶段 加微）
        从 2026-11-23 周一 21:00 起模拟 10 天，不连接企业微信；免打扰 21:30–08:30，每天最多 1 条、每周最多 3 条（Asia/Shanghai）
        2026-11-23 周一 21:00 第0天  报名：第一步 d0_trial_pack，11-23 22:00 到期
        2026-11-23 周一 22:00 第0天  d0_trial_pack  顺延：免打扰时段（21:30–08:30），顺延到 11月24日 08:30
        2026-11-24 周二 08:30 第1天  d0_trial_pack  发送（微信客服）：新朋友可以免费领一次试用装哦，纸尿裤3片或者奶粉小罐二选一，来徐汇旗舰店直接领，… ［小程序：小禾母婴会员中心］
        2026-11-24 周二 10:00 第1天  d1_ask_age  顺延：客户今天已收到 1 条推送（上限 1），顺延到 11月25日 08:30
        2026-11-25 周三 08:30 第2天  d1_ask_age  发送（微信客服）：陈晓雨早上好～我是徐汇旗舰店的小林。方便告诉我宝宝现在几个月了吗？我按月龄帮您整…；等待回应到 11-26 08:30
        2026-11-25 周三 09:00 第2天  客户回复：“宝宝8个月了”
        2026-11-25 周三 09:00 第2天  d1_ask_age  分支：客户回复了 → d3_member（11-26 20:30 到期）
        2026-11-26 周四 20:30 第3天  d3_member  发送（微信客服）：陈晓雨，宝宝的月龄我记下啦，以后有适合的内容第一时间发您。顺便推荐您注册小禾会员… ［小程序：注册小禾会员］
        2026-11-30 周一 10:00 第7天  d7_checkin  发送（导购群发任务）：陈晓雨，认识一周啦～试用装领到了吗？宝宝用着合不合适，都可以跟我说说。周末要来徐…
        2026-11-30 周一 10:00 第7天  d7_checkin  剧本结束：全部步骤已走完
        汇总：发送 4 条（微信客服 3，导购群发任务 1）；顺延 2 次；跳过 0 步；结果：走完
        """
    )


def test_shipped_new_contact_no_answer_goes_to_the_feeding_guide(run_cli) -> None:
    _, out, _ = run_cli(
        "simulate",
        str(ROOT / "sop" / "new_contact.yaml"),
        "--customer",
        str(ROOT / "sop" / "examples" / "customer_new_mom.yaml"),
        "--content-dir",
        str(ROOT / "content_library"),
    )
    assert "d1_ask_age  分支：等待期内没有回应 → d3_feeding_guide（11-26 20:30 到期）" in out
    assert "d3_feeding_guide  发送（导购群发任务）" in out  # her kf window closed on day 2
    assert (
        out.splitlines()[-1]
        == "汇总：发送 4 条（微信客服 2，导购群发任务 2）；顺延 2 次；跳过 0 步；结果：走完"
    )


def test_examples_are_not_playbooks() -> None:
    assert "customer_new_mom.yaml" not in playbooks.read_playbook_files(ROOT / "sop")
    assert len(playbooks.load_playbooks(ROOT / "sop").playbooks) == 4


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "--replies",
            "day2 好的",
            "siyu: --replies 'day2 好的': expected 'dayN HH:MM TEXT' or 'YYYY-MM-DD HH:MM TEXT', "
            "e.g. 'day2 10:30 好的' (day 0 = the enrollment day)",
        ),
        (
            "--replies",
            "day2 10:30",
            "siyu: --replies 'day2 10:30': what did she write? expected 'dayN HH:MM TEXT' or "
            "'YYYY-MM-DD HH:MM TEXT', e.g. 'day2 10:30 好的'",
        ),
        ("--replies", "day2 24:10 好的", "siyu: --replies 'day2 24:10 好的': hour must be in 0..23"),
        (
            "--replies",
            "2026-11-20 10:00 好的",
            "siyu: --replies: 2026-11-20 周五 10:00 is before the start 2026-11-23 周一 21:00",
        ),
        (
            "--clicks",
            "day3 21:00 点了",
            "siyu: --clicks 'day3 21:00 点了': a click has no text; expected 'dayN HH:MM' or "
            "'YYYY-MM-DD HH:MM', e.g. 'day3 21:00'",
        ),
    ],
)
def test_bad_reactions_are_explained(run_cli, files, option: str, value: str, message: str) -> None:
    code, out, err = simulate(run_cli, files, option, value)
    assert (code, out, err) == (2, "", message + "\n")


def test_parse_reactions_orders_them_in_time() -> None:
    start = dt.datetime(2026, 11, 23, 21, 0, tzinfo=SHANGHAI)
    got = cli_sop.parse_reactions(["day2 10:30 好的 谢谢", "2026-11-24 08:00 嗯"], ["day1 21:00"], start)
    assert [(r.at.strftime("%m-%d %H:%M"), r.kind, r.text) for r in got] == [
        ("11-24 08:00", "reply", "嗯"),
        ("11-24 21:00", "click", ""),
        ("11-25 10:30", "reply", "好的 谢谢"),
    ]


def test_bad_customer_file_is_reported_with_its_line(run_cli, files) -> None:
    files[1].write_text(CUSTOMER + "lead_score: lots\n", encoding="utf-8")
    code, out, _ = simulate(run_cli, files)
    assert code == 1
    assert out.splitlines() == [
        f"{files[1]}:7: lead_score: Input should be a valid integer, unable to parse string as an integer",
        "1 error(s)",
    ]


def test_simulate_needs_a_start(run_cli, files) -> None:
    files[1].write_text(CUSTOMER.replace('added_at: "2026-11-23 21:00"\n', ""), encoding="utf-8")
    code, _, err = simulate(run_cli, files)
    assert code == 2
    assert "give --start 'YYYY-MM-DD HH:MM' or added_at" in err


def test_simulate_function_is_deterministic() -> None:
    playbook = playbooks.load_playbooks_from_texts({"p.yaml": PLAYBOOK}).playbooks[0]
    customer = cli_sop.SimCustomer.model_validate({"id": "wm", "stage": "加微", "guide": "g1"})
    start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
    first = cli_sop.simulate(playbook, customer, policy.PolicySettings(), start=start, days=5)
    assert first == cli_sop.simulate(playbook, customer, policy.PolicySettings(), start=start, days=5)
    assert "hello  发送（导购群发任务）：您好，我是的。" in first[3]  # no texts given: variables render empty


# ------------------------------------------------------------------------------------------- status


async def seed(url: str) -> None:
    engine = db.create_engine(url)
    try:
        await db.prepare(engine, auto_upgrade=True)
        async with db.sessionmaker(engine).begin() as session:
            runs = [
                ("wm_a", "new_contact", "d1_ask_age", "due"),
                ("wm_b", "new_contact", "d1_ask_age", "due"),
                ("wm_c", "new_contact", "d1_ask_age", "waiting"),
                ("wm_d", "new_contact", "d7_checkin", "done"),
                ("wm_e", "new_contact", "d0_trial_pack", "exited"),
                ("wm_a", "old_promo", "p1", "due"),
            ]
            for customer, playbook, step, state in runs:
                session.add(
                    Enrollment(
                        external_userid=customer,
                        playbook_id=playbook,
                        iteration=1,
                        enrolled_at=0.0,
                        step_id=step,
                        state=state,
                        due_at=0.0,
                        step_reached_at=0.0,
                        updated_at=0.0,
                    )
                )
            logs = [
                ("d0_trial_pack", "sent", "kf", ""),
                ("d0_trial_pack", "sent", "kf", ""),
                ("d0_trial_pack", "sent", "mass_task", ""),
                ("d0_trial_pack", "deferred", "", "quiet_hours"),
                ("d0_trial_pack", "deferred", "", "quiet_hours"),
                ("d0_trial_pack", "exited", "", "exit"),
                ("d1_ask_age", "sent", "mass_task", ""),
                ("d1_ask_age", "skipped", "", "kf_window"),
                ("d1_ask_age", "skipped", "", "late"),
                ("d1_ask_age", "branched", "", "reply"),
                ("d7_checkin", "sent", "guide_notify", ""),
                ("d7_checkin", "done", "", "finished"),
            ]
            for step, outcome, route, reason in logs:
                session.add(
                    SopLog(
                        enrollment_id=1,
                        external_userid="wm_a",
                        playbook_id="new_contact",
                        step_id=step,
                        outcome=outcome,
                        route=route,
                        reason=reason,
                        at=0.0,
                    )
                )
            outbox = [
                ("mass:wm_a:new_contact:d0_trial_pack:1", "failed"),
                ("kf:reply:wk_service:sop:wm_c:new_contact:d0_trial_pack:1", "failed"),
                ("notify:sop:wm_d:new_contact:d7_checkin:1", "failed"),
                ("mass:wm_b:new_contact:d0_trial_pack:1", "done"),  # sent: not a failure
                ("kf:reply:wk_service:msg123", "failed"),  # an FAQ answer, not an SOP send
                ("masscheck:wm_a:new_contact:d0_trial_pack:1:1", "failed"),  # a task check
            ]
            for key, status in outbox:
                session.add(
                    OutboxRow(
                        idem_key=key, kind="x", payload={}, status=status, created_at=0.0, available_at=0.0
                    )
                )
    finally:
        await engine.dispose()


def test_status_counts_per_playbook_and_step(run_cli, settings_factory) -> None:
    asyncio.run(seed(settings_factory().database.url))
    code, out, _ = run_cli("status")
    assert code == 0
    assert out == textwrap.dedent(
        """\
        after_sales「售后关怀」  还没有客户报名
        baby_month「月龄关怀」  还没有客户报名
        dormant_recall「沉默唤醒」  还没有客户报名
        new_contact「新客培育」  报名 5：进行中 3（待发 2，等待回应 1），走完 1，退出 1
          d0_trial_pack     待发 0  等待 0  已发 3（kf 2，mass_task 1）  顺延 2  跳过 0  退出 1  走完 0  发送失败 2
          d1_ask_age        待发 2  等待 1  已发 1（mass_task 1）  顺延 0  跳过 2（kf_window 1，late 1）  退出 0  走完 0  发送失败 0
          d3_member         待发 0  等待 0  已发 0  顺延 0  跳过 0  退出 0  走完 0  发送失败 0
          d3_feeding_guide  待发 0  等待 0  已发 0  顺延 0  跳过 0  退出 0  走完 0  发送失败 0
          d7_checkin        待发 0  等待 0  已发 1（guide_notify 1）  顺延 0  跳过 0  退出 0  走完 1  发送失败 1
        old_promo（不在 sop/ 中）  报名 1：进行中 1（待发 1，等待回应 0），走完 0，退出 0
          p1  待发 1  等待 0  已发 0  顺延 0  跳过 0  退出 0  走完 0  发送失败 0
        """
    )


def test_send_key_step() -> None:
    assert cli_sop.send_key_step("mass:wm_a:new_contact:d0:2") == ("new_contact", "d0")
    assert cli_sop.send_key_step("notify:sop:wm_a:p:s:1") == ("p", "s")
    assert cli_sop.send_key_step("kf:reply:wk1:sop:wm_a:p:s:1") == ("p", "s")
    assert cli_sop.send_key_step("kf:reply:wk1:msg1") is None
    assert cli_sop.send_key_step("mass:garbage") is None
