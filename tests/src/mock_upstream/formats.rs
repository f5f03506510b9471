//! Bodies and SSE frames in each provider's real wire format.

use serde_json::{json, Value};

/// The wire format of a request, decided by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAiChat,
    Responses,
    Anthropic,
    Gemini,
}

/// Text of a unary answer.
pub const UNARY_TEXT: &str = "Hello from mock";

/// A 1×1 PNG, base64: the image every image answer carries.
pub const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// Text beside the image of an image model's chat answer.
pub const IMAGE_TEXT: &str = "Here is your image";

/// An OpenAI images API answer with `n` images (`url` items if asked).
pub fn images(n: u64, url: bool) -> Value {
    let item = |i: u64| {
        if url {
            json!({"url": format!("https://images.mock.invalid/{i}.png")})
        } else {
            json!({"b64_json": PNG_B64})
        }
    };
    json!({"created": 1, "data": (0..n).map(item).collect::<Vec<_>>(),
           "usage": {"input_tokens": 5, "output_tokens": 100, "total_tokens": 105}})
}

/// Text of stream chunk `i` (a stream's text is the concatenation).
pub fn chunk_text(i: usize) -> String {
    format!("tok{i} ")
}

fn frame(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

pub fn unary(wire: Wire, model: &str) -> Value {
    if model.contains("image") {
        if let Some(v) = image_unary(wire, model) {
            return v;
        }
    }
    match wire {
        Wire::OpenAiChat => json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": UNARY_TEXT}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        }),
        Wire::Responses => json!({
            "id": "resp_mock", "object": "response", "created_at": 1, "status": "completed", "model": model,
            "output": [{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": UNARY_TEXT, "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
        }),
        Wire::Anthropic => json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": UNARY_TEXT}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 3}
        }),
        Wire::Gemini => json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": UNARY_TEXT}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
            "modelVersion": model
        }),
    }
}

/// An image model's chat answer: text and one image, in the wire's image field.
fn image_unary(wire: Wire, model: &str) -> Option<Value> {
    match wire {
        Wire::Gemini => Some(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": IMAGE_TEXT}, {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]},
                "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
            "modelVersion": model
        })),
        Wire::OpenAiChat => Some(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": IMAGE_TEXT,
                "images": [{"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG_B64}")}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        })),
        Wire::Responses => Some(json!({
            "id": "resp_mock", "object": "response", "created_at": 1, "status": "completed", "model": model,
            "output": [{"type": "image_generation_call", "id": "ig_mock", "status": "completed", "output_format": "png", "result": PNG_B64},
                       {"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": IMAGE_TEXT, "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
        })),
        Wire::Anthropic => None,
    }
}

/// Frames sent before the first text chunk.
pub fn stream_head(wire: Wire, model: &str) -> Vec<String> {
    match wire {
        Wire::OpenAiChat | Wire::Gemini => vec![],
        Wire::Responses => vec![
            frame(
                Some("response.created"),
                &json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_mock", "object": "response", "created_at": 1, "status": "in_progress", "model": model, "output": []}}),
            ),
            frame(
                Some("response.output_item.added"),
                &json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"type": "message", "id": "msg_mock", "status": "in_progress", "role": "assistant", "content": []}}),
            ),
            frame(
                Some("response.content_part.added"),
                &json!({"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_mock", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
            ),
        ],
        Wire::Anthropic => vec![
            frame(
                Some("message_start"),
                &json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 0}}}),
            ),
            frame(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ],
    }
}

/// Text chunk `i` of a stream.
pub fn stream_chunk(wire: Wire, model: &str, i: usize) -> String {
    let t = chunk_text(i);
    match wire {
        Wire::OpenAiChat => frame(
            None,
            &json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": t}, "finish_reason": null}]}),
        ),
        Wire::Responses => frame(
            Some("response.output_text.delta"),
            &json!({"type": "response.output_text.delta", "sequence_number": 3 + i, "item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": t}),
        ),
        Wire::Anthropic => frame(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
        ),
        Wire::Gemini => frame(
            None,
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}], "modelVersion": model}),
        ),
    }
}

/// Frames that end a stream of `n` chunks.
pub fn stream_tail(wire: Wire, model: &str, n: usize) -> Vec<String> {
    let text: String = (0..n).map(chunk_text).collect();
    match wire {
        Wire::OpenAiChat => vec![
            frame(
                None,
                &json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}}),
            ),
            "data: [DONE]\n\n".to_string(),
        ],
        Wire::Responses => vec![
            frame(
                Some("response.output_text.done"),
                &json!({"type": "response.output_text.done", "sequence_number": 3 + n, "item_id": "msg_mock", "output_index": 0, "content_index": 0, "text": text}),
            ),
            frame(
                Some("response.completed"),
                &json!({"type": "response.completed", "sequence_number": 4 + n, "response": {"id": "resp_mock", "object": "response", "created_at": 1, "status": "completed", "model": model,
                    "output": [{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                    "usage": {"input_tokens": 5, "output_tokens": n, "total_tokens": 5 + n}}}),
            ),
        ],
        Wire::Anthropic => vec![
            frame(Some("content_block_stop"), &json!({"type": "content_block_stop", "index": 0})),
            frame(
                Some("message_delta"),
                &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": n}}),
            ),
            frame(Some("message_stop"), &json!({"type": "message_stop"})),
        ],
        Wire::Gemini => vec![frame(
            None,
            &json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": n, "totalTokenCount": 5 + n}, "modelVersion": model}),
        )],
    }
}

/// An error body in the provider's own shape.
pub fn error(wire: Wire, status: u16, message: &str) -> Value {
    match wire {
        Wire::OpenAiChat | Wire::Responses => {
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                429 => "rate_limit_error",
                500..=599 => "server_error",
                _ => "invalid_request_error",
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Wire::Anthropic => {
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Wire::Gemini => {
            let kind = match status {
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                429 => "RESOURCE_EXHAUSTED",
                500..=599 => "INTERNAL",
                _ => "INVALID_ARGUMENT",
            };
            json!({"error": {"code": status, "message": message, "status": kind}})
        }
    }
}
