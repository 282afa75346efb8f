//! Outbreak detection quality: `cargo bench --bench outbreak`.
//!
//! Replays a labelled, timestamped set of agents' reports through the real detector
//! (`Incidents::report_in` on a temporary sled store, tickets filed as the conversation
//! files them) and prints, for several similarity cut-offs:
//! - pairwise precision and recall of the clustering (two reports "together" when they end
//!   in the same incident; truly together when they are reports of the same outage);
//! - time to detection: from an outage's first report to its incident;
//! - false incidents per quiet day: incidents made only of background reports.
//!
//! The set (generated deterministically here): 10 days of background reports at realistic
//! rates (busier in trading hours, a trickle at night and at weekends), drawn from ~40
//! unrelated field-report texts about every system, plus 6 outages on days 4–10 (8–60
//! agents each, reporting 3–8 paraphrases of the fault within minutes, some twice, some with
//! a customer number in the text). The first three days are background only: the baseline's
//! history. Incidents are resolved 90 minutes after they open, as handlers would.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use wecom_helpdesk::config::IncidentsConfig;
use wecom_helpdesk::ident::{CustomerId, IdKind};
use wecom_helpdesk::incidents::{IncidentSettings, Incidents, Op, Report};
use wecom_helpdesk::outbox::Outbox;
use wecom_helpdesk::store::{AnyTree, Store};
use wecom_helpdesk::tickets::{NewTicket, TicketSettings, Tickets};
use wecom_helpdesk::wecom::{Channel, ChatType};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Monday 2026-11-02 00:00 in UTC+8.
const START: i64 = 1_793_548_800_000;
const DAYS: i64 = 10;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Exponential with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// Background reports: (system, text). Unrelated problems, some sharing words with the
/// outages (委托, 转账, 登录), as real traffic does.
const BACKGROUND: &[(&str, &str)] = &[
    (
        "交易",
        "某只股票撤单撤不掉|撤单一直不成功，那笔委托还挂着|想撤单但是撤不了",
    ),
    (
        "交易",
        "科创板买不了，是不是权限没开|为什么买科创板股票提示没有权限",
    ),
    ("交易", "持仓成本价显示得不对|成本价和客户算的不一样"),
    ("交易", "新股申购额度是怎么算的|打新额度为什么是零"),
    ("交易", "委托价格超过涨停价被拒|挂单价格超出涨跌幅限制"),
    ("交易", "交易密码在哪里改|想修改交易密码找不到地方"),
    ("交易", "可转债怎么卖出，找不到入口|可转债卖出在哪个菜单"),
    ("交易", "港股通买入提示额度不足|港股通当日额度用完了吗"),
    ("交易", "昨天的成交记录查不到了|历史成交查询是空的"),
    ("交易", "ETF申赎的手续费是多少|场内基金申购赎回怎么收费"),
    (
        "三方存管",
        "想换绑银行卡，流程怎么走|更换存管银行卡需要什么手续",
    ),
    ("三方存管", "周末能不能银证转账|节假日可以转账吗"),
    ("三方存管", "转出资金限额是多少|一天最多能转出多少钱"),
    (
        "三方存管",
        "存管银行变更需要带什么材料|变更存管银行要去营业部吗",
    ),
    ("三方存管", "银行转过来的钱几点到账|转入资金多久能用"),
    ("三方存管", "银行卡被冻结了怎么办|银行卡冻结影响转账吗"),
    ("App/登录", "忘记登录密码，怎么找回|登录密码忘了怎么重置"),
    (
        "App/登录",
        "手机换号了收不到验证码|新手机号收不到短信验证码",
    ),
    (
        "App/登录",
        "App提示版本太旧要更新|升级App后找不到原来的功能",
    ),
    ("App/登录", "指纹登录怎么开启|能不能用面容登录"),
    ("App/登录", "想注销App账号|App账号怎么注销"),
    ("App/登录", "字体太小看不清，能不能调大|App里字号怎么调"),
    ("开户/账户", "开户视频见证一直排队|视频见证等了很久没人接"),
    ("开户/账户", "身份证过期了要怎么更新|证件到期了怎么在线更新"),
    ("开户/账户", "想开创业板权限|创业板权限开通条件是什么"),
    ("开户/账户", "风险测评结果过期了|风险评估要重新做吗"),
    ("开户/账户", "要销户，需要本人到场吗|销户能不能线上办"),
    ("开户/账户", "股东账户怎么加挂深市|深市股东卡怎么加开"),
    ("理财", "理财产品到期了钱还没回来|理财到期资金什么时候到账"),
    ("理财", "想赎回基金，几天到账|基金赎回多久能到账"),
    ("理财", "理财收益率和宣传的不一样|实际收益比预期低很多"),
    ("理财", "定投怎么修改扣款日期|基金定投扣款日能改吗"),
    ("融资融券", "融资额度怎么申请提高|两融授信额度能调高吗"),
    ("融资融券", "融券卖出没有券源|为什么融不到券"),
    ("融资融券", "两融利息是怎么计算的|融资利率是多少"),
    ("融资融券", "信用账户开通需要什么条件|开两融账户要多少资产"),
    ("其他", "营业部地址在哪里|最近的营业部在哪"),
    ("其他", "要打印对账单|对账单怎么导出"),
    ("其他", "客服电话打不通|热线一直占线"),
    ("其他", "年度账单在哪里查看|去年的年度账单怎么看"),
];

/// How agents open and close a report.
const PREFIXES: &[&str] = &["", "", "客户反映", "您好，", "麻烦看下，", "客户问"];
const SUFFIXES: &[&str] = &["", "", "，谢谢", "，客户比较急", "，麻烦处理一下"];

struct Outage {
    system: &'static str,
    /// Day (0-based) and minute of day it starts.
    day: i64,
    minute: i64,
    reporters: usize,
    paraphrases: &'static [&'static str],
}

const OUTAGES: &[Outage] = &[
    Outage {
        system: "交易",
        day: 3,
        minute: 9 * 60 + 35,
        reporters: 60,
        paraphrases: &[
            "股票交易不了，委托一直失败",
            "客户下单提示委托失败",
            "买入委托一直报错，下不了单",
            "交易委托下单失败，提示系统繁忙",
            "客户反映今天委托都失败了",
            "下单一直转圈然后提示委托失败",
            "卖出委托提交不了，提示失败",
            "委托下单报错，客户很着急",
        ],
    },
    Outage {
        system: "三方存管",
        day: 4,
        minute: 14 * 60 + 10,
        reporters: 20,
        paraphrases: &[
            "银证转账失败，钱转不进来",
            "客户银行转证券一直失败",
            "转账提示存管银行系统异常",
            "银证转入失败，资金没到账",
            "证券转银行转不出去，转账失败",
            "三方存管转账报错",
        ],
    },
    Outage {
        system: "App/登录",
        day: 6,
        minute: 20 * 60 + 15,
        reporters: 8,
        paraphrases: &[
            "App登录不上，一直提示网络异常",
            "客户手机App登录失败",
            "登录时一直转圈进不去App",
            "App登录后马上闪退",
            "登录提示服务器繁忙，登不上",
        ],
    },
    Outage {
        system: "交易",
        day: 7,
        minute: 13 * 60 + 5,
        reporters: 25,
        paraphrases: &[
            "行情不刷新，价格一直不动",
            "看盘行情卡住了不更新",
            "股票行情停在开盘价不动了",
            "行情数据延迟很严重，不刷新",
        ],
    },
    Outage {
        system: "融资融券",
        day: 8,
        minute: 10 * 60 + 20,
        reporters: 10,
        paraphrases: &[
            "两融账户维持担保比例显示不对",
            "融资融券担保比例显示为零",
            "信用账户担保比例异常，客户很着急",
        ],
    },
    Outage {
        system: "开户/账户",
        day: 9,
        minute: 9 * 60 + 50,
        reporters: 15,
        paraphrases: &[
            "客户账户总资产显示为零",
            "账户资产显示不对，持仓都不见了",
            "资金账户总资产显示错误",
            "客户说账户资产和持仓对不上，资产少了很多",
        ],
    },
];

#[derive(Clone)]
struct Labelled {
    at: i64,
    system: &'static str,
    text: String,
    reporter: String,
    /// The outage it reports, `None` for background.
    outage: Option<usize>,
}

/// Background reports per hour of a system at `t`: busy in trading hours on weekdays.
fn background_rate(t: i64) -> f64 {
    let day = (t - START) / DAY;
    let minute = ((t - START) % DAY) / MIN;
    let weekday = day % 7 < 5;
    let trading =
        (9 * 60 + 30..11 * 60 + 30).contains(&minute) || (13 * 60..15 * 60).contains(&minute);
    match (weekday, trading) {
        (true, true) => 5.0,
        (true, false) if (8 * 60..21 * 60).contains(&minute) => 1.5,
        _ => 0.3,
    }
}

fn dataset() -> Vec<Labelled> {
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut out = Vec::new();
    // Background: a Poisson process over all systems, by the hour.
    let mut t = START;
    while t < START + DAYS * DAY {
        let rate = background_rate(t) * 6.0; // six systems' worth
        t += (rng.exp(60.0 / rate) * MIN as f64) as i64 + 1;
        let (system, phrasings) = BACKGROUND[rng.below(BACKGROUND.len() as u64) as usize];
        let phrasings: Vec<&str> = phrasings.split('|').collect();
        let phrasing = phrasings[rng.below(phrasings.len() as u64) as usize];
        let prefix = PREFIXES[rng.below(PREFIXES.len() as u64) as usize];
        let suffix = SUFFIXES[rng.below(SUFFIXES.len() as u64) as usize];
        let mut text = format!("{prefix}{phrasing}{suffix}");
        if rng.below(4) == 0 {
            text = format!("客户{} {text}", 10_000_000 + rng.below(89_999_999));
        }
        out.push(Labelled {
            at: t,
            system,
            text,
            reporter: format!("agent{}", rng.below(400)),
            outage: None,
        });
    }
    // Outages: reports within minutes of the start, most in the first quarter hour.
    for (k, o) in OUTAGES.iter().enumerate() {
        let start = START + o.day * DAY + o.minute * MIN;
        for n in 0..o.reporters {
            let at = start + (rng.exp(6.0) * MIN as f64).min(40.0 * MIN as f64) as i64;
            let mut text = o.paraphrases[rng.below(o.paraphrases.len() as u64) as usize].to_owned();
            if rng.below(5) == 0 {
                text = format!("{text}，客户号{}", 10_000_000 + rng.below(89_999_999));
            }
            let reporter = format!("outage{k}-{n}");
            out.push(Labelled {
                at,
                system: o.system,
                text: text.clone(),
                reporter: reporter.clone(),
                outage: Some(k),
            });
            // Some agents report twice.
            if rng.below(6) == 0 {
                out.push(Labelled {
                    at: at + 3 * MIN,
                    system: o.system,
                    text,
                    reporter,
                    outage: Some(k),
                });
            }
        }
    }
    out.sort_by_key(|r| r.at);
    out
}

struct Run {
    cutoff: f32,
    precision: f64,
    recall: f64,
    detection_min: Vec<f64>,
    missed: usize,
    /// Background-only incidents in the first three days (no history) and after.
    false_warmup: usize,
    false_after: usize,
    /// Time of each report's transaction (ticket + detection), µs.
    micros: Vec<f64>,
}

/// Days of background only at the start: the baseline's history.
const WARMUP_DAYS: i64 = 3;

fn run(data: &[Labelled], cutoff: f32) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 32 << 20).expect("store");
    let outbox = Outbox::open(&store).expect("outbox");
    let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("offset");
    let tickets = Tickets::open(
        &store,
        outbox.clone(),
        TicketSettings {
            prefix: "IT".into(),
            utc_offset: offset,
            public_url: String::new(),
            calendar: Default::default(),
        },
    )
    .expect("tickets");
    let incidents = Incidents::open(
        &store,
        tickets.clone(),
        outbox,
        IncidentSettings {
            rules: IncidentsConfig {
                number_prefix: "INC".into(),
                resolve_with_alerts: true,
                auto_resolve_after: Duration::from_secs(24 * 3600),
                major_after: Duration::from_secs(3600),
                major_reporters: 10,
                outbreak_window: Duration::from_secs(30 * 60),
                outbreak_min_reporters: 3,
                similarity_cutoff: cutoff,
                resolve_tickets: false,
                system_keywords: Vec::new(),
            },
            utc_offset: offset,
            public_url: String::new(),
        },
    )
    .expect("incidents");
    let mut trees: Vec<&dyn AnyTree> = tickets.trees();
    trees.extend(incidents.own_trees());

    let mut numbers = Vec::with_capacity(data.len());
    let mut micros = Vec::with_capacity(data.len());
    // Incident number → (opened at, report time of its first member).
    let mut opened: HashMap<String, i64> = HashMap::new();
    let mut detected: HashMap<usize, i64> = HashMap::new();
    for r in data {
        // Handlers resolve incidents 90 minutes after they open.
        let due: Vec<String> = opened
            .iter()
            .filter(|(_, at)| r.at - **at > 90 * MIN)
            .map(|(n, _)| n.clone())
            .collect();
        for n in due {
            opened.remove(&n);
            let _ = incidents.act(&n, "bench", &Op::Resolve("已恢复".into()));
        }
        let new = NewTicket {
            reporter: r.reporter.clone(),
            reporter_name: String::new(),
            channel: Channel::App,
            chat_type: ChatType::Single,
            chat_id: r.reporter.clone(),
            customer_id: CustomerId {
                kind: IdKind::CustomerNo,
                value: "12345678".into(),
            },
            system: r.system.to_owned(),
            description: r.text.clone(),
            screenshots: Vec::new(),
        };
        let began = std::time::Instant::now();
        let (number, incident) = store
            .transaction::<_, Infallible>(&trees, |tx| {
                let t = tickets.create_in(tx, &new, r.at)?;
                let report = Report {
                    system: &t.system,
                    text: &t.description,
                    reporter: &t.reporter,
                    ticket: Some(&t),
                };
                let got = incidents.report_in(tx, &report, r.at)?;
                Ok((t.number, got.incident.map(|i| i.number)))
            })
            .expect("report");
        micros.push(began.elapsed().as_secs_f64() * 1e6);
        if let Some(inc) = incident {
            opened.entry(inc).or_insert(r.at);
            if let Some(k) = r.outage {
                detected.entry(k).or_insert(r.at);
            }
        }
        numbers.push(number);
    }
    // Where each report ended: its ticket's incident.
    let assigned: Vec<Option<String>> = numbers
        .iter()
        .map(|n| tickets.by_number(n).expect("read").and_then(|t| t.incident))
        .collect();
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    for i in 0..data.len() {
        for j in i + 1..data.len() {
            let truly = data[i].outage.is_some() && data[i].outage == data[j].outage;
            let together = assigned[i].is_some() && assigned[i] == assigned[j];
            match (truly, together) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                (false, false) => {}
            }
        }
    }
    // Incidents made of background reports only.
    let mut members: HashMap<&str, (usize, usize)> = HashMap::new();
    for (r, a) in data.iter().zip(&assigned) {
        if let Some(a) = a {
            let e = members.entry(a.as_str()).or_default();
            if r.outage.is_some() {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    let mut false_days: HashMap<&str, i64> = HashMap::new();
    for (r, a) in data.iter().zip(&assigned) {
        if let Some(a) = a
            && members[a.as_str()].0 == 0
        {
            false_days.entry(a.as_str()).or_insert((r.at - START) / DAY);
        }
    }
    let false_warmup = false_days.values().filter(|d| **d < WARMUP_DAYS).count();
    let false_after = false_days.len() - false_warmup;
    if std::env::var_os("OUTBREAK_DEBUG").is_some() {
        for k in 0..OUTAGES.len() {
            let mut by: HashMap<Option<&str>, usize> = HashMap::new();
            for (r, a) in data.iter().zip(&assigned) {
                if r.outage == Some(k) {
                    *by.entry(a.as_deref()).or_default() += 1;
                }
            }
            eprintln!("cutoff {cutoff} outage {k}: {by:?}");
        }
        for (r, a) in data.iter().zip(&assigned) {
            if let Some(a) = a
                && members[a.as_str()].0 == 0
            {
                eprintln!(
                    "false {a} day {} {} {}",
                    (r.at - START) / DAY,
                    r.system,
                    r.text
                );
            }
        }
    }
    let mut detection_min = Vec::new();
    for (k, o) in OUTAGES.iter().enumerate() {
        let start = data
            .iter()
            .filter(|r| r.outage == Some(k))
            .map(|r| r.at)
            .min()
            .unwrap_or(START + o.day * DAY);
        if let Some(at) = detected.get(&k) {
            detection_min.push((at - start) as f64 / MIN as f64);
        }
    }
    Run {
        cutoff,
        precision: tp as f64 / (tp + fp).max(1) as f64,
        recall: tp as f64 / (tp + fn_).max(1) as f64,
        missed: OUTAGES.len() - detection_min.len(),
        detection_min,
        false_warmup,
        false_after,
        micros,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let data = dataset();
    let outage_reports = data.iter().filter(|r| r.outage.is_some()).count();
    println!(
        "{} reports over {DAYS} days: {} background, {} in {} outages",
        data.len(),
        data.len() - outage_reports,
        outage_reports,
        OUTAGES.len()
    );
    println!();
    println!(
        "| cut-off | pairwise precision | pairwise recall | outages detected | time to detection (median / max) | false incidents per day: first {WARMUP_DAYS} days (no history) / after |"
    );
    println!("|---|---|---|---|---|---|");
    let mut timing = Vec::new();
    for cutoff in [0.2, 0.25, 0.3, 0.35, 0.4, 0.5] {
        let r = run(&data, cutoff);
        if cutoff == 0.3 {
            timing = r.micros.clone();
        }
        let max = r.detection_min.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "| {:.2} | {:.3} | {:.3} | {}/{} | {:.1} / {:.1} min | {:.2} / {:.2} |",
            r.cutoff,
            r.precision,
            r.recall,
            OUTAGES.len() - r.missed,
            OUTAGES.len(),
            median(r.detection_min.clone()),
            max,
            r.false_warmup as f64 / WARMUP_DAYS as f64,
            r.false_after as f64 / (DAYS - WARMUP_DAYS) as f64,
        );
    }
    timing.sort_by(f64::total_cmp);
    let at = |q: f64| timing[((timing.len() - 1) as f64 * q) as usize];
    println!();
    println!(
        "one report (file the ticket + count, match, cluster; one transaction, before the fsync): p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
