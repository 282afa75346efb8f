//! The ticket queue's filters and ordering, from the console's query string (the page and
//! the API take the same).

use serde::Deserialize;

use super::sla::{self, SlaState};
use super::{Category, Status, Ticket};
use crate::config::SlaConfig;

/// Queue filters, from the query string (the API takes the same).
#[derive(Debug, Clone, Default, Deserialize)]
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

    /// Whether `t` passes the filters, for the viewer `me`.
    pub fn accepts(&self, t: &Ticket, me: &str) -> bool {
        self.status_ok(t)
            && (self.system.is_empty() || t.system == self.system)
            && (self.category.is_empty()
                || t.category.map(Category::key) == Some(self.category.as_str()))
            && match self.assignee.as_str() {
                "" => true,
                "-" => t.assignee.is_none(),
                a => t.assignee.as_deref() == Some(a),
            }
            && (!self.mine || t.assignee.as_deref() == Some(me))
            && self.query_ok(t)
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
