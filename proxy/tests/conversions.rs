//! Request/response conversion behaviour beyond the golden files: field mappings that matter,
//! pass-through, and typed errors naming the offending field.

use poolgate_proxy::convert::{
    convert_request, convert_request_with, convert_response_at, count_tokens, ConvertError, Protocol, RequestOverrides,
};
use serde_json::{json, Value};

fn req(client: Protocol, backend: Protocol, body: Value) -> Value {
    convert_request(client, backend, &body).unwrap_or_else(|e| panic!("{client} -> {backend}: {e}")).body
}

#[test]
fn images_map_between_data_urls_base64_sources_and_inline_data() {
    let openai = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}]}]});
    let anthropic = req(Protocol::OpenAiChat, Protocol::Anthropic, openai.clone());
    assert_eq!(
        anthropic["messages"][0]["content"][0]["source"],
        json!({"type": "base64", "media_type": "image/jpeg", "data": "QUJD"})
    );
    let gemini = req(Protocol::Anthropic, Protocol::Gemini, anthropic);
    assert_eq!(gemini["contents"][0]["parts"][0], json!({"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}}));
    let back = convert_request_with(
        Protocol::Gemini,
        Protocol::OpenAiChat,
        &gemini,
        &RequestOverrides { model: Some("m".into()), stream: None },
    )
    .unwrap();
    assert_eq!(
        back.body["messages"][0]["content"][0],
        json!({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}})
    );
}

#[test]
fn remote_image_urls_stay_urls() {
    let openai = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    let a = req(Protocol::OpenAiChat, Protocol::Anthropic, openai.clone());
    assert_eq!(a["messages"][0]["content"][0]["source"], json!({"type": "url", "url": "https://example.com/cat.png"}));
    let g = req(Protocol::OpenAiChat, Protocol::Gemini, openai);
    assert_eq!(
        g["contents"][0]["parts"][0],
        json!({"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}})
    );
}

#[test]
fn gemini_function_responses_get_the_tool_name_from_the_call() {
    let openai = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"answer\":42}"}]});
    let g = req(Protocol::OpenAiChat, Protocol::Gemini, openai);
    assert_eq!(
        g["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "lookup", "response": {"answer": 42}}})
    );
}

#[test]
fn gemini_calls_without_ids_are_paired_with_their_responses() {
    let gemini = json!({"model": "g", "contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}, {"functionCall": {"name": "b", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "b", "response": {"content": "B"}}},
            {"functionResponse": {"name": "a", "response": {"content": "A"}}}]}]});
    let a = req(Protocol::Gemini, Protocol::Anthropic, gemini);
    let calls = &a["messages"][1]["content"];
    let results = &a["messages"][2]["content"];
    assert_eq!(calls[0]["name"], "a");
    assert_eq!(results[1]["tool_use_id"], calls[0]["id"]);
    assert_eq!(results[1]["content"], "A");
    assert_eq!(results[0]["tool_use_id"], calls[1]["id"]);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
}

#[test]
fn consecutive_tool_messages_form_one_anthropic_user_turn() {
    let openai = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"}]});
    let a = req(Protocol::OpenAiChat, Protocol::Anthropic, openai);
    let msgs = a["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
}

#[test]
fn anthropic_requests_get_required_fields_and_valid_thinking() {
    let openai = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(req(Protocol::OpenAiChat, Protocol::Anthropic, openai)["max_tokens"], 8192);
    let openai = json!({"model": "m", "max_tokens": 500, "reasoning_effort": "high", "temperature": 0.2,
                        "messages": [{"role": "user", "content": "hi"}]});
    let a = req(Protocol::OpenAiChat, Protocol::Anthropic, openai);
    // A budget Anthropic rejects (≥ max_tokens, or below its 1024 minimum) is not sent.
    assert!(a.get("thinking").is_none());
    assert_eq!(a["temperature"], 0.2);
}

#[test]
fn openai_backends_are_asked_for_stream_usage() {
    let a = json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let o = req(Protocol::Anthropic, Protocol::OpenAiChat, a);
    assert_eq!(o["stream_options"], json!({"include_usage": true}));
}

#[test]
fn same_protocol_passes_everything_through_and_renames_the_model() {
    let body = json!({"model": "a", "messages": [], "vendor_field": {"x": 1}, "logit_bias": {"1": 2}});
    let out = convert_request_with(
        Protocol::OpenAiChat,
        Protocol::OpenAiChat,
        &body,
        &RequestOverrides { model: Some("b".into()), stream: None },
    )
    .unwrap();
    assert_eq!(out.model, "b");
    assert_eq!(out.body["vendor_field"], json!({"x": 1}));
    assert_eq!(out.body["logit_bias"], json!({"1": 2}));
    assert_eq!(out.body["model"], "b");

    let gemini = json!({"contents": [], "safetySettings": [{"category": "x"}]});
    let out = convert_request_with(
        Protocol::Gemini,
        Protocol::Gemini,
        &gemini,
        &RequestOverrides { model: Some("models/gemini-2.5-pro".into()), stream: Some(true) },
    )
    .unwrap();
    assert_eq!((out.model.as_str(), out.stream), ("gemini-2.5-pro", true));
    assert_eq!(out.body, gemini);
}

#[test]
fn errors_name_the_offending_field() {
    let cases = [
        (Protocol::OpenAiChat, json!({"model": "m"}), ConvertError::Missing("messages".into())),
        (
            Protocol::OpenAiChat,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            ConvertError::InvalidValue { field: "messages[0].content[0].type".into(), value: "\"input_audio\"".into() },
        ),
        (
            Protocol::Anthropic,
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            ConvertError::WrongType {
                field: "messages[0].content".into(),
                expected: "a string or an array of content blocks",
            },
        ),
        (
            Protocol::Anthropic,
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]}),
            ConvertError::Missing("messages[0].content[0].source.media_type".into()),
        ),
        (
            Protocol::Gemini,
            json!({"model": "g", "contents": [{"parts": [{"functionCall": {}}]}]}),
            ConvertError::Missing("contents[0].parts[0].functionCall.name".into()),
        ),
        (
            Protocol::OpenAiResponses,
            json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}),
            ConvertError::Unsupported("previous_response_id".into()),
        ),
        (Protocol::OpenAiResponses, json!({"input": "hi"}), ConvertError::Missing("model".into())),
        (Protocol::Gemini, json!([1, 2]), ConvertError::WrongType { field: "body".into(), expected: "an object" }),
    ];
    for (client, body, want) in cases {
        let backend = if client == Protocol::Anthropic { Protocol::OpenAiChat } else { Protocol::Anthropic };
        assert_eq!(convert_request(client, backend, &body), Err(want), "{client}: {body}");
    }
}

#[test]
fn unary_usage_maps_cached_tokens_both_ways() {
    let anthropic = json!({"id": "m1", "type": "message", "role": "assistant", "model": "c", "content": [],
        "stop_reason": "end_turn", "usage": {"input_tokens": 5, "cache_read_input_tokens": 90,
        "cache_creation_input_tokens": 5, "output_tokens": 7}});
    let o = convert_response_at(Protocol::Anthropic, Protocol::OpenAiChat, &anthropic, 1).unwrap();
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 90}})
    );
    let g = convert_response_at(Protocol::OpenAiChat, Protocol::Gemini, &o, 1).unwrap();
    assert_eq!(
        g["usageMetadata"],
        json!({"promptTokenCount": 100, "candidatesTokenCount": 7,
        "totalTokenCount": 107, "cachedContentTokenCount": 90})
    );
    let a = convert_response_at(Protocol::Gemini, Protocol::Anthropic, &g, 1).unwrap();
    assert_eq!(a["usage"]["cache_read_input_tokens"], 90);
    assert_eq!(a["usage"]["input_tokens"], 10);
}

#[test]
fn stop_sequences_and_refusals_map_to_finish_reasons() {
    let anthropic = |reason: &str| {
        json!({"id": "m", "type": "message", "role": "assistant", "model": "c",
        "content": [{"type": "text", "text": "x"}], "stop_reason": reason, "stop_sequence": "END", "usage": {}})
    };
    let finish =
        |reason: &str, client| convert_response_at(Protocol::Anthropic, client, &anthropic(reason), 1).unwrap();
    assert_eq!(finish("stop_sequence", Protocol::OpenAiChat)["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish("refusal", Protocol::OpenAiChat)["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(finish("max_tokens", Protocol::Gemini)["candidates"][0]["finishReason"], "MAX_TOKENS");
    let r = finish("max_tokens", Protocol::OpenAiResponses);
    assert_eq!(
        (r["status"].as_str(), &r["incomplete_details"]),
        (Some("incomplete"), &json!({"reason": "max_output_tokens"}))
    );
}

#[test]
fn upstream_error_bodies_are_not_taken_for_responses() {
    let err = json!({"error": {"message": "bad", "type": "invalid_request_error"}});
    for backend in Protocol::ALL {
        for client in Protocol::ALL.into_iter().filter(|c| *c != backend) {
            assert!(convert_response_at(backend, client, &err, 1).is_err(), "{backend} -> {client}");
        }
    }
}

#[test]
fn count_tokens_reads_every_protocol() {
    let anthropic = json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": "abcdefgh"}]});
    let openai = json!({"model": "c", "messages": [{"role": "user", "content": "abcdefgh"}]});
    let n = count_tokens(Protocol::Anthropic, &anthropic).unwrap();
    assert_eq!(n, 3 + 2);
    assert_eq!(count_tokens(Protocol::OpenAiChat, &openai), Ok(n));
    assert!(count_tokens(Protocol::Anthropic, &json!({"model": "c"})).is_err());
}
