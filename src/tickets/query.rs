//! The ticket queue's filters and ordering, from the console's query string (the page and
//! the API take the same).

use serde::{Deserialize, Serialize};

use super::sla::{self, SlaState};
use super::{Category, Status, Ticket};
use crate::config::SlaConfig;

/// Tickets on one page of the console's queue.
pub const PER_PAGE: usize = 50;
/// The most tickets one API call may ask for.
pub const MAX_PER_PAGE: usize = 500;

/// Queue filters, from the query string (the API takes the same).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct Filters {
    /// `open` (default), `all`, or a status key.
    pub status: String,
    pub system: String,
    pub category: String,
    /// A login, `-` for unassigned, empty for everyone.
    pub assignee: String,
    #[serde(deserialize_with = "checkbox")]
    pub mine: bool,
    pub q: String,
    /// `sla` (default) or `age`.
    pub sort: String,
    /// 1-based page; 0 (absent): the first.
    pub page: usize,
    /// Tickets a page (0: the default of whoever pages).
    pub per_page: usize,
    /// A reporter's WeCom userid.
    pub reporter: String,
    /// A customer identifier, whole or masked as notices show it (`110105＊＊＊＊＊＊＊＊002X`,
    /// `*` for `＊` accepted).
    pub customer: String,
    /// A period of local dates `YYYY-MM-DD`, both inclusive (reports' drill-down): the
    /// tickets filed in it, or with `by=resolved` those resolved in it.
    pub from: String,
    pub to: String,
    pub by: String,
    /// The desk's UTC offset in seconds, for the period (set by the handler, never read
    /// from the query).
    #[serde(skip)]
    pub utc_offset_secs: i32,
}

/// One page of a selection.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// 1-based, within `1..=pages`.
    pub page: usize,
    pub pages: usize,
    /// Items over all pages.
    pub total: usize,
}

fn checkbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    Ok(matches!(v.as_deref(), Some("1" | "true" | "on")))
}

impl Filters {
    pub fn normalized(mut self) -> Filters {
        if self.status.is_empty() {
            self.status = "open".into();
        }
        if self.sort.is_empty() {
            self.sort = "sla".into();
        }
        self.q = self.q.trim().to_owned();
        self
    }

    /// The statuses the filter can show: the queue reads only these from the status index.
    pub fn statuses(&self) -> Vec<Status> {
        match self.status.as_str() {
            "open" => Status::ALL
                .iter()
                .copied()
                .filter(|s| s.is_open())
                .collect(),
            "all" => Status::ALL.to_vec(),
            key => Status::parse(key).into_iter().collect(),
        }
    }

    fn status_ok(&self, t: &Ticket) -> bool {
        match self.status.as_str() {
            "open" => t.status.is_open(),
            "all" => true,
            key => Status::parse(key).is_some_and(|s| s == t.status),
        }
    }

    fn query_ok(&self, t: &Ticket) -> bool {
        if self.q.is_empty() {
            return true;
        }
        let q = self.q.to_lowercase();
        let digits = crate::ident::normalize(&self.q);
        t.number.to_lowercase().contains(&q)
            || (digits.len() >= 4 && t.customer_id.value.contains(&digits))
            || t.description.to_lowercase().contains(&q)
    }

    /// The local date of `ms` at the desk.
    fn local_date(&self, ms: i64) -> String {
        let offset = chrono::FixedOffset::east_opt(self.utc_offset_secs)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("UTC"));
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&offset)
            .format("%Y-%m-%d")
            .to_string()
    }

    fn customer_ok(&self, t: &Ticket) -> bool {
        let q = self.customer.trim();
        if q.is_empty() {
            return true;
        }
        let masked = q.replace('*', "＊");
        crate::ident::normalize(q) == t.customer_id.value
            || masked == t.customer_id.masked()
            || masked == t.customer_id.masked_label()
    }

    fn period_ok(&self, t: &Ticket) -> bool {
        if self.from.is_empty() && self.to.is_empty() {
            return true;
        }
        let at = if self.by == "resolved" {
            match t.resolved_at {
                Some(at) => at,
                None => return false,
            }
        } else {
            t.created_at
        };
        let day = self.local_date(at);
        (self.from.is_empty() || day.as_str() >= self.from.as_str())
            && (self.to.is_empty() || day.as_str() <= self.to.as_str())
    }

    /// Whether `t` passes the filters, for the viewer `me`.
    pub fn accepts(&self, t: &Ticket, me: &str) -> bool {
        self.status_ok(t)
            && (self.system.is_empty() || t.system == self.system)
            && match self.category.as_str() {
                "" => true,
                "none" => t.category.is_none(),
                key => t.category.map(Category::key) == Some(key),
            }
            && self.period_ok(t)
            && (self.reporter.is_empty() || t.reporter == self.reporter)
            && self.customer_ok(t)
            && match self.assignee.as_str() {
                "" => true,
                "-" => t.assignee.is_none(),
                a => t.assignee.as_deref() == Some(a),
            }
            && (!self.mine || t.assignee.as_deref() == Some(me))
            && self.query_ok(t)
    }

    /// The page of `items` these filters ask for, `default_size` a page unless they say.
    pub fn page_of<T>(&self, items: Vec<T>, default_size: usize) -> Page<T> {
        let size = match self.per_page {
            0 => default_size,
            n => n.min(MAX_PER_PAGE),
        }
        .max(1);
        let total = items.len();
        let pages = total.div_ceil(size).max(1);
        let page = self.page.clamp(1, pages);
        let items = items
            .into_iter()
            .skip((page - 1) * size)
            .take(size)
            .collect();
        Page {
            items,
            page,
            pages,
            total,
        }
    }

    /// The query string of these filters at `page` (for the queue's page links).
    pub fn query_for_page(&self, page: usize) -> String {
        let f = Filters {
            page,
            ..self.clone()
        };
        let full = serde_urlencoded::to_string(&f).unwrap_or_default();
        // Only what differs from the defaults: short links.
        full.split('&')
            .filter(|kv| {
                !kv.ends_with('=') && *kv != "mine=false" && *kv != "per_page=0" && *kv != "page=0"
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Filter and sort `tickets` (newest first in, any order).
    pub fn select(
        &self,
        tickets: Vec<Ticket>,
        me: &str,
        cfg: &SlaConfig,
        now: i64,
    ) -> Vec<(Ticket, SlaState)> {
        let mut out: Vec<(Ticket, SlaState)> = tickets
            .into_iter()
            .filter(|t| self.accepts(t, me))
            .map(|t| {
                let s = sla::state(&t, cfg, now);
                (t, s)
            })
            .collect();
        match self.sort.as_str() {
            "age" => out.sort_by(|a, b| {
                a.0.created_at
                    .cmp(&b.0.created_at)
                    .then(a.0.id.cmp(&b.0.id))
            }),
            _ => out.sort_by(|a, b| {
                a.1.urgency()
                    .cmp(&b.1.urgency())
                    .then(a.0.created_at.cmp(&b.0.created_at))
            }),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(status: &str) -> Filters {
        Filters {
            status: status.into(),
            ..Filters::default()
        }
        .normalized()
    }

    #[test]
    fn pages_are_clamped_and_links_keep_the_filters() {
        let f = Filters {
            q: "资金 不足".into(),
            page: 9,
            ..filters("all")
        };
        let p = f.page_of((0..120).collect(), 50);
        assert_eq!((p.page, p.pages, p.total), (3, 3, 120));
        assert_eq!(p.items, (100..120).collect::<Vec<_>>());
        let q = f.query_for_page(2);
        assert!(q.contains("status=all") && q.contains("page=2"), "{q}");
        let back: Filters = serde_urlencoded::from_str(&q).expect("parses");
        assert_eq!((back.q.as_str(), back.page), ("资金 不足", 2));
        assert_eq!(Filters::default().page_of(Vec::<u8>::new(), 50).pages, 1);
    }

    #[test]
    fn the_status_filter_names_the_statuses_to_read() {
        assert_eq!(
            filters("").statuses(),
            [Status::New, Status::InProgress, Status::NeedInfo]
        );
        assert_eq!(filters("all").statuses(), Status::ALL);
        assert_eq!(filters("resolved").statuses(), [Status::Resolved]);
        assert!(filters("nonsense").statuses().is_empty());
    }
}
