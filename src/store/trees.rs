//! Every sled tree of the database, declared once: its name, the module that owns it (the
//! only one that opens it), its key layout and its value. Keys are encoded by
//! [`Key`](super::Key) (big-endian integers, 0xFF between tuple parts); values are
//! versioned JSON records ([`Record`](super::Record)).
//!
//! [`Store::tree`](super::Store::tree) opens only trees declared here, so two modules cannot
//! pick the same name by accident, and this table is the map of the data.

/// One tree of the database.
#[derive(Debug)]
pub struct TreeDef {
    pub name: &'static str,
    /// The module that opens it.
    pub owner: &'static str,
    pub key: &'static str,
    pub value: &'static str,
}

macro_rules! trees {
    ($($id:ident = $name:literal, $owner:literal, $key:literal => $value:literal;)*) => {
        $(
            #[doc = concat!("`", $name, "` (", $owner, "): `", $key, "` → `", $value, "`")]
            pub const $id: TreeDef = TreeDef {
                name: $name,
                owner: $owner,
                key: $key,
                value: $value,
            };
        )*
        /// Every tree, in this file's order.
        pub const ALL: &[&TreeDef] = &[$(&$id),*];
    };
}

trees! {
    META = "meta", "store", "String key (schema_version)" => "u64";
    INBOX = "inbox", "inbox", "String dedupe key (app/MsgId)" => "inbox::Entry (the message while unprocessed)";
    INBOX_DEAD = "inbox_dead", "inbox", "u64 seq" => "inbox::InboxItem that failed repeatedly";
    OUTBOX = "outbox", "outbox", "(String lane, u64 job id)" => "outbox::Job, pending or in flight";
    OUTBOX_LANE = "outbox_lane", "outbox", "u64 job id" => "String lane";
    OUTBOX_DEAD = "outbox_dead", "outbox", "u64 job id" => "outbox::Job that failed for good";
    OUTBOX_DONE = "outbox_done", "outbox", "u64 job id" => "outbox::Delivered (swept after a week)";
    FAQ_LOG = "faq_log", "kb::log", "u64 id" => "kb::log::QueryLog (identifiers masked)";
    TICKETS = "tickets", "tickets", "u64 id" => "tickets::Ticket";
    TICKET_NUMBERS = "ticket_numbers", "tickets", "String number (IT20261121-0042)" => "u64 id";
    TICKET_EVENTS = "ticket_events", "tickets", "(u64 id, u64 seq)" => "tickets::TicketEvent, the thread in order";
    TICKETS_BY_REPORTER = "tickets_by_reporter", "tickets", "(String userid, u64 id)" => "()";
    HANDLER_CONTACTS = "handler_contacts", "tickets", "String console login" => "String WeCom userid, for notices to that handler";
    TICKETS_BY_CUSTOMER = "tickets_by_customer", "tickets", "(String customer identifier, u64 id)" => "()";
    TICKETS_BY_STATUS = "tickets_by_status", "tickets", "(String status key, u64 id)" => "()";
    COUNTERS = "counters", "tickets", "String (ticket/20261121)" => "u64, the daily ticket counter";
    MEMBERS = "members", "tickets", "String userid" => "tickets::MemberInfo, names from user/get";
    SESSIONS = "sessions", "conversation::session", "(String member, String chat key)" => "conversation::session::Session";
    MEMBER_DIALOGS = "member_dialogs", "conversation::session", "String member" => "Vec<String> chat keys with a dialog running";
    INCIDENTS = "incidents", "incidents", "u64 id" => "incidents::Incident";
    INCIDENT_NUMBERS = "incident_numbers", "incidents", "String number (INC20261130-003)" => "u64 id";
    INCIDENT_EVENTS = "incident_events", "incidents", "(u64 id, u64 seq)" => "incidents::IncidentEvent, the timeline in order";
    INCIDENTS_OPEN = "incidents_open", "incidents", "u64 id" => "(), while not resolved";
    INCIDENT_COUNTERS = "incident_counters", "incidents", "String day (20261130)" => "u64, the daily incident counter";
    ALERTS = "alerts", "incidents", "String alert id (source/fingerprint or source/dedup_key)" => "incidents::Alert, its last state";
    INCIDENT_ALERTS = "incident_alerts", "incidents", "(u64 incident id, String alert id)" => "()";
    ALERT_GROUPS = "alert_groups", "incidents", "String group id (source/groupKey)" => "u64 id of the group's latest incident";
    INCIDENTS_BY_SYSTEM = "incidents_by_system", "incidents", "String system" => "Vec<u64> ids of its incidents not resolved";
    CLUSTERS = "clusters", "incidents::outbreak", "u64 id" => "incidents::Cluster, similar reports";
    CLUSTERS_BY_SYSTEM = "clusters_by_system", "incidents::outbreak", "String system" => "Vec<u64> ids of its open clusters, newest first";
    REPORT_BINS = "report_bins", "incidents::outbreak", "(String system, u64 5-minute bin; bin 0: the first bin seen)" => "u64 reports";
    CUTOFFS = "cutoffs", "incidents::outbreak", "String system" => "f32, the system's similarity cut-off";
    REPORTS_SENT = "reports_sent", "dashboard::weekly", "String period (weekly/2026-W48)" => "i64, when its report was staged";
    REPORT_AUDIT = "report_audit", "dashboard::export", "u64 id" => "dashboard::export::AuditEntry, exports with whole identifiers";
    EDIT_VERSIONS = "edit_versions", "editor", "(String file (kb/x.md), u64 seq)" => "editor::Version, the text before a save (the last 20)";
    EDIT_AUDIT = "edit_audit", "editor", "u64 id" => "editor::Change: who, when, what (a diff)";
    TEMPLATES = "templates", "accounts::tools", "u64 id" => "accounts::tools::Template, reply templates";
    MACROS = "macros", "accounts::tools", "u64 id" => "accounts::tools::Macro";
    VIEWS = "views", "accounts::tools", "u64 id" => "accounts::tools::View, saved queue filters";
    PREFS = "prefs", "accounts::tools", "String login" => "accounts::tools::Prefs (WeCom userid, notices, default view, seen)";
    CONSOLE_USERS = "console_users", "accounts", "String login" => "accounts::User (argon2id hash, role)";
    CONSOLE_SESSIONS = "console_sessions", "accounts", "String session id" => "accounts::Session (user, CSRF token, expiry)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_plain() {
        let mut names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a tree name is declared twice");
        for t in ALL {
            assert!(
                t.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                t.name
            );
        }
    }
}
