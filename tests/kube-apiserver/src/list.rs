//! Lists: selectors and pagination with `continue` tokens.

use serde_json::{json, Value};

use crate::admission::Target;
use crate::error::{ApiError, ApiResult};
use crate::ops::present;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjKey, State};

/// List query parameters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
}

/// GET/LIST: the matching objects, one page of them.
pub fn list(state: &State, t: &Target, q: &ListQuery) -> ApiResult<Value> {
    let res = t.rt.key();
    let ns = (!t.ns.is_empty()).then_some(t.ns.as_str());
    let after = q.continue_token.as_deref().map(decode_continue).transpose()?;
    if let Some((rv, _)) = &after {
        if state.subscribe(*rv).is_none() {
            return Err(ApiError::Gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
            ));
        }
    }
    let matching: Vec<(&ObjKey, &Value)> = state
        .list(&res, ns)
        .filter(|(k, _)| after.as_ref().is_none_or(|(_, last)| (k.ns.clone(), k.name.clone()) > *last))
        .filter(|(_, v)| q.labels.matches(v) && q.fields.matches(v))
        .collect();
    let page_len = if q.limit > 0 { q.limit.min(matching.len()) } else { matching.len() };
    let items: Vec<Value> = matching[..page_len].iter().map(|(_, v)| present(v, t)).collect();
    let mut metadata = json!({"resourceVersion": state.rv().to_string()});
    if let Some((last, _)) = matching[..page_len].last().filter(|_| page_len < matching.len()) {
        // Continue tokens keep the resourceVersion of the first page, so they expire with it.
        let rv = after.map_or(state.rv(), |(rv, _)| rv);
        metadata["continue"] = json!(encode_continue(rv, &last.ns, &last.name));
        metadata["remainingItemCount"] = json!(matching.len() - page_len);
    }
    Ok(json!({
        "kind": t.rt.list_kind,
        "apiVersion": t.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    let raw = json!({"rv": rv, "ns": ns, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<(u64, (String, String))> {
    use base64::Engine;
    let bad = || ApiError::BadRequest("continue key is not valid".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from).ok_or_else(bad);
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    Ok((rv, (s("ns")?, s("name")?)))
}
