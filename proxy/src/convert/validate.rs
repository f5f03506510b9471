//! Shape checks for bodies that are relayed without conversion (same protocol on both sides):
//! client requests before they go upstream, and upstream answers before they reach the client.
//! Converted bodies get the same guarantees from their decoders.

use serde_json::Value;

use super::error::ConvertError;
use super::protocol::Protocol;

/// Checks that a client request has its protocol's structure (the fields every upstream of that
/// protocol requires, with the right JSON types). Unknown fields are left to the upstream.
pub fn validate_request(protocol: Protocol, body: &Value) -> Result<(), ConvertError> {
    let Some(o) = body.as_object() else { return Err(ConvertError::wrong_type("body", "a JSON object")) };
    if let Some(s) = o.get("stream") {
        if !s.is_boolean() && !s.is_null() {
            return Err(ConvertError::wrong_type("stream", "a boolean"));
        }
    }
    match protocol {
        Protocol::OpenAiChat => messages(o.get("messages"), "messages", true),
        Protocol::Anthropic => {
            messages(o.get("messages"), "messages", true)?;
            optional_text_or_blocks(o.get("system"), "system")
        }
        Protocol::OpenAiResponses => match o.get("input") {
            None | Some(Value::Null) if o.get("previous_response_id").is_some() => Ok(()),
            None | Some(Value::Null) => Err(ConvertError::Missing("input".into())),
            Some(Value::String(_)) => Ok(()),
            Some(Value::Array(items)) => {
                items.iter().enumerate().try_for_each(|(i, it)| object_or_string(it, &format!("input[{i}]")))
            }
            Some(_) => Err(ConvertError::wrong_type("input", "a string or an array")),
        },
        Protocol::Gemini => {
            let contents = match o.get("contents") {
                None => return Err(ConvertError::Missing("contents".into())),
                Some(Value::Array(c)) => c,
                Some(_) => return Err(ConvertError::wrong_type("contents", "an array")),
            };
            for (i, c) in contents.iter().enumerate() {
                let field = format!("contents[{i}]");
                let Some(c) = c.as_object() else { return Err(ConvertError::wrong_type(field, "an object")) };
                match c.get("parts") {
                    None | Some(Value::Array(_)) => {}
                    Some(_) => return Err(ConvertError::wrong_type(format!("{field}.parts"), "an array")),
                }
            }
            Ok(())
        }
    }
}

fn messages(v: Option<&Value>, field: &str, required: bool) -> Result<(), ConvertError> {
    let list = match v {
        None if !required => return Ok(()),
        None => return Err(ConvertError::Missing(field.into())),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(ConvertError::wrong_type(field, "an array")),
    };
    if list.is_empty() {
        return Err(ConvertError::invalid_value(field, "[] (at least one message is required)"));
    }
    for (i, m) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let Some(m) = m.as_object() else { return Err(ConvertError::wrong_type(at, "an object")) };
        if !m.get("role").is_some_and(Value::is_string) {
            return Err(ConvertError::wrong_type(format!("{at}.role"), "a string"));
        }
        optional_text_or_blocks(m.get("content"), &format!("{at}.content"))?;
    }
    Ok(())
}

fn optional_text_or_blocks(v: Option<&Value>, field: &str) -> Result<(), ConvertError> {
    match v {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => {
            parts.iter().enumerate().try_for_each(|(i, p)| object_or_string(p, &format!("{field}[{i}]")))
        }
        Some(_) => Err(ConvertError::wrong_type(field, "a string or an array")),
    }
}

fn object_or_string(v: &Value, field: &str) -> Result<(), ConvertError> {
    if v.is_object() || v.is_string() {
        Ok(())
    } else {
        Err(ConvertError::wrong_type(field, "an object"))
    }
}

/// Checks that a unary upstream answer relayed as is looks like its protocol's response: a JSON
/// object with the protocol's result field and no top-level `error`. Anything else is an
/// upstream failure (another account is tried), never a 200 for the client.
pub fn validate_answer(protocol: Protocol, body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "upstream answer is not valid JSON".to_string())?;
    let Some(o) = v.as_object() else { return Err("upstream answer is not a JSON object".into()) };
    // Code Assist backends wrap the Gemini answer in `{"response": …}`.
    let o = match (protocol, o.get("response")) {
        (Protocol::Gemini, Some(Value::Object(inner))) => inner,
        _ => o,
    };
    let expected = match protocol {
        Protocol::OpenAiChat => "choices",
        Protocol::OpenAiResponses => "output",
        Protocol::Anthropic => "content",
        Protocol::Gemini => "candidates",
    };
    let has_result = o.get(expected).is_some_and(Value::is_array)
        || (protocol == Protocol::Gemini && o.contains_key("promptFeedback"));
    if has_result {
        return Ok(());
    }
    if o.contains_key("error") {
        let message = super::upstream_message(body).unwrap_or_else(|| "unknown error".into());
        return Err(format!("upstream answered 200 with an error: {message}"));
    }
    Err(format!("upstream answer has no `{expected}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn chat_requests_need_a_list_of_messages_with_roles() {
        let p = Protocol::OpenAiChat;
        assert!(validate_request(p, &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})).is_ok());
        let e = validate_request(p, &json!({"model": "m", "messages": "not-a-list"})).unwrap_err();
        assert_eq!(e.to_string(), "`messages` must be an array");
        assert!(validate_request(p, &json!({"model": "m"})).is_err());
        assert!(validate_request(p, &json!({"model": "m", "messages": []})).is_err());
        let e = validate_request(p, &json!({"messages": [{"content": "x"}]})).unwrap_err();
        assert_eq!(e.to_string(), "`messages[0].role` must be a string");
        assert!(validate_request(p, &json!({"messages": [{"role": "user", "content": 5}]})).is_err());
        assert!(validate_request(p, &json!({"messages": [{"role": "user"}], "stream": "yes"})).is_err());
    }

    #[test]
    fn other_protocols_check_their_own_fields() {
        assert!(validate_request(Protocol::OpenAiResponses, &json!({"input": "hi"})).is_ok());
        assert!(validate_request(Protocol::OpenAiResponses, &json!({"input": 3})).is_err());
        assert!(validate_request(Protocol::OpenAiResponses, &json!({"previous_response_id": "r"})).is_ok());
        assert!(validate_request(Protocol::Anthropic, &json!({"messages": [{"role": "user", "content": []}]})).is_ok());
        assert!(validate_request(Protocol::Anthropic, &json!({"messages": [{"role": "user"}], "system": 1})).is_err());
        assert!(validate_request(Protocol::Gemini, &json!({"contents": [{"parts": [{"text": "x"}]}]})).is_ok());
        assert!(validate_request(Protocol::Gemini, &json!({"contents": {"parts": []}})).is_err());
        assert!(validate_request(Protocol::Gemini, &json!({"contents": [{"parts": "x"}]})).is_err());
    }

    #[test]
    fn answers_must_parse_and_carry_a_result() {
        let p = Protocol::OpenAiChat;
        assert!(validate_answer(p, br#"{"choices":[]}"#).is_ok());
        assert!(validate_answer(p, b"<html>502 Bad Gateway</html>").is_err());
        assert!(validate_answer(p, b"").is_err());
        let e = validate_answer(p, br#"{"error":{"message":"overloaded"}}"#).unwrap_err();
        assert!(e.contains("overloaded"), "{e}");
        assert!(validate_answer(Protocol::Gemini, br#"{"response":{"candidates":[]}}"#).is_ok());
        assert!(validate_answer(Protocol::Anthropic, br#"{"type":"message","content":[]}"#).is_ok());
        assert!(validate_answer(Protocol::OpenAiResponses, br#"{"object":"response"}"#).is_err());
    }

    fn protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![
            Just(Protocol::OpenAiChat),
            Just(Protocol::OpenAiResponses),
            Just(Protocol::Anthropic),
            Just(Protocol::Gemini)
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("messages".to_string()),
                        Just("role".to_string()),
                        Just("content".to_string()),
                        Just("contents".to_string()),
                        Just("parts".to_string()),
                        Just("input".to_string()),
                        Just("choices".to_string()),
                        Just("error".to_string()),
                        "[a-z]{1,4}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Arbitrary JSON and arbitrary bytes never panic the checks.
        #[test]
        fn checks_never_panic(p in protocol(), v in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = validate_request(p, &v);
            let _ = validate_answer(p, v.to_string().as_bytes());
            let _ = validate_answer(p, &bytes);
        }

    }
}
