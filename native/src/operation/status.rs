//! Operation status documents, in both styles the project follows.
//!
//! The operation resource style has `state` (pending, running, succeeded,
//! failed, canceled), an inline `result` and an RFC 9457 `problem`:
//!
//! ```json
//! {"id": "42", "state": "failed", "problem": {"title": "Quota", "status": 429}}
//! ```
//!
//! The OData/Azure style has `status` (NotStarted, Running, Succeeded,
//! Failed, Canceled), `percentComplete`, and an `error` object:
//!
//! ```json
//! {"status": "Running", "percentComplete": 40}
//! ```
//!
//! Names and values are matched case-insensitively and without `_` or `-`,
//! so `percent_complete` and `PercentComplete` are the same field. Only the
//! top level is decoded into a map of raw values; a field is parsed further
//! only when it is used, and an inline `result` is passed on byte for byte.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::Value;

/// Where an operation stands, as the server said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl State {
    /// Reads a state word. Only the three terminal states and the words
    /// for "not started yet" have a meaning of their own; any other word
    /// means "in progress", as the Azure guidelines ask of clients, so that
    /// a server adding a state of its own (`Deleting`) does not break us.
    pub fn from_word(word: &str) -> State {
        match normalize(word).as_str() {
            "succeeded" | "completed" => State::Succeeded,
            "failed" => State::Failed,
            "canceled" | "cancelled" => State::Canceled,
            "pending" | "notstarted" | "queued" | "accepted" => State::Pending,
            _ => State::Running,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Canceled)
    }
}

/// The fields of a status document that the poller uses.
#[derive(Debug, Default)]
pub struct StatusDoc<'a> {
    /// The state, with the server's own word for it.
    pub state: Option<(State, String)>,
    pub percent: Option<u8>,
    /// The inline result, as it was written (absent when `null`).
    pub result: Option<&'a RawValue>,
    /// `problem` (RFC 9457) or, in the Azure style, `error`.
    pub problem: Option<Value>,
    /// Azure's `resourceLocation`: where the result is.
    pub resource_location: Option<String>,
    /// The `location` of a 202 body (the status URL).
    pub location: Option<String>,
}

/// Parses a body as a status document; `None` when it is not a JSON object.
pub fn parse(body: &[u8]) -> Option<StatusDoc<'_>> {
    let fields: HashMap<String, &RawValue> = serde_json::from_slice(body).ok()?;
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| normalize(k) == name)
            .map(|(_, v)| *v)
    };
    let text = |name: &str| get(name).and_then(|v| serde_json::from_str::<String>(v.get()).ok());
    let problem = get("problem")
        .or_else(|| get("error"))
        .and_then(|v| serde_json::from_str::<Value>(v.get()).ok())
        .and_then(as_problem);
    Some(StatusDoc {
        // `state` first: in the operation style `status` could be something
        // else, and a numeric `status` (as in a problem) is never a state.
        state: text("state")
            .or_else(|| text("status"))
            .map(|w| (State::from_word(&w), w)),
        percent: get("percentcomplete").and_then(percent),
        result: get("result").filter(|v| v.get().trim() != "null"),
        problem,
        resource_location: text("resourcelocation"),
        location: text("location"),
    })
}

/// Parses a body as a JSON object for an error's `problem`, if it is one.
pub fn problem_of(body: &[u8]) -> Option<Value> {
    match serde_json::from_slice::<Value>(body).ok()? {
        v @ Value::Object(_) => Some(v),
        _ => None,
    }
}

/// A problem is an object; a bare string is read as its `detail`.
fn as_problem(v: Value) -> Option<Value> {
    match v {
        Value::Object(_) => Some(v),
        Value::String(s) => {
            let mut m = serde_json::Map::new();
            m.insert("detail".into(), Value::String(s));
            Some(Value::Object(m))
        }
        _ => None,
    }
}

/// `percentComplete` as a number (or a numeric string), rounded and
/// clamped to 0..=100.
fn percent(v: &RawValue) -> Option<u8> {
    let n = match serde_json::from_str::<Value>(v.get()).ok()? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !n.is_finite() {
        return None;
    }
    // In range after the clamp, so the cast cannot truncate.
    Some(n.round().clamp(0.0, 100.0) as u8)
}

/// One line about a problem for an error's `reason`: RFC 9457's `title`
/// and `detail`, or Azure's `code` and `message`.
pub fn describe(problem: &Value) -> Option<String> {
    let field = |name: &str| {
        problem
            .as_object()?
            .iter()
            .find(|(k, _)| normalize(k) == name)
            .and_then(|(_, v)| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    };
    let parts: Vec<String> = [
        field("title").or_else(|| field("code")),
        field("detail").or_else(|| field("message")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(": "))
    }
}

/// Lower case without `_`, `-` or spaces: `Not_Started` is `notstarted`.
fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_style_is_read() {
        let doc = parse(br#"{"id":"1","state":"succeeded","result":{"b":1,"a":[2, 3]}}"#).unwrap();
        assert_eq!(doc.state, Some((State::Succeeded, "succeeded".into())));
        assert_eq!(doc.result.map(|r| r.get()), Some(r#"{"b":1,"a":[2, 3]}"#));
        assert_eq!(doc.percent, None);
    }

    #[test]
    fn azure_style_is_read() {
        let doc = parse(br#"{"status":"NotStarted","percentComplete":12.6}"#).unwrap();
        assert_eq!(doc.state, Some((State::Pending, "NotStarted".into())));
        assert_eq!(doc.percent, Some(13));
        let doc =
            parse(br#"{"Status":"Failed","error":{"code":"Quota","message":"too many"}}"#).unwrap();
        assert_eq!(doc.state.map(|s| s.0), Some(State::Failed));
        assert_eq!(
            describe(doc.problem.as_ref().unwrap()).as_deref(),
            Some("Quota: too many")
        );
    }

    #[test]
    fn names_and_words_ignore_case_and_separators() {
        let doc = parse(br#"{"STATE":"RUNNING","percent_complete":"50"}"#).unwrap();
        assert_eq!(doc.state.map(|s| s.0), Some(State::Running));
        assert_eq!(doc.percent, Some(50));
        assert_eq!(State::from_word("Not_Started"), State::Pending);
        assert_eq!(State::from_word("CANCELLED"), State::Canceled);
        assert_eq!(State::from_word("Canceled"), State::Canceled);
        assert_eq!(State::from_word("Deleting"), State::Running);
    }

    #[test]
    fn state_wins_over_status_and_numbers_are_not_states() {
        let doc = parse(br#"{"status":"Failed","state":"running"}"#).unwrap();
        assert_eq!(doc.state.map(|s| s.0), Some(State::Running));
        let doc = parse(br#"{"status":500,"title":"Boom"}"#).unwrap();
        assert!(doc.state.is_none());
    }

    #[test]
    fn percent_is_clamped_and_junk_ignored() {
        assert_eq!(
            parse(br#"{"percentComplete":140}"#).unwrap().percent,
            Some(100)
        );
        assert_eq!(
            parse(br#"{"percentComplete":-3}"#).unwrap().percent,
            Some(0)
        );
        assert_eq!(
            parse(br#"{"percentComplete":"lots"}"#).unwrap().percent,
            None
        );
        assert_eq!(parse(br#"{"percentComplete":null}"#).unwrap().percent, None);
    }

    #[test]
    fn null_result_is_no_result() {
        assert!(parse(br#"{"state":"succeeded","result":null}"#)
            .unwrap()
            .result
            .is_none());
    }

    #[test]
    fn problems_are_described() {
        let doc = parse(br#"{"state":"failed","problem":{"type":"about:blank","title":"Out of paper","detail":"tray 2","status":409}}"#).unwrap();
        let p = doc.problem.unwrap();
        assert_eq!(describe(&p).as_deref(), Some("Out of paper: tray 2"));
        let doc = parse(br#"{"state":"failed","error":"disk full"}"#).unwrap();
        assert_eq!(
            describe(&doc.problem.unwrap()).as_deref(),
            Some("disk full")
        );
        assert_eq!(describe(&serde_json::json!({"status": 500})), None);
    }

    #[test]
    fn garbage_is_not_a_document() {
        assert!(parse(b"<html>oops</html>").is_none());
        assert!(parse(b"[1,2]").is_none());
        assert!(parse(b"").is_none());
        assert!(parse(b"{\"state\":").is_none());
        assert!(problem_of(b"\"text\"").is_none());
        assert!(problem_of(br#"{"title":"x"}"#).is_some());
    }

    #[test]
    fn locations_are_read() {
        let doc = parse(br#"{"state":"pending","location":"/ops/1"}"#).unwrap();
        assert_eq!(doc.location.as_deref(), Some("/ops/1"));
        let doc = parse(br#"{"status":"Succeeded","resourceLocation":"https://h/r/1"}"#).unwrap();
        assert_eq!(doc.resource_location.as_deref(), Some("https://h/r/1"));
    }
}
