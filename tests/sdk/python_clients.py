"""Drives poolgate with the official Python SDKs, unmodified: OpenAI (Chat Completions and
Responses), Anthropic (Messages) and google-genai (generateContent), unary and streaming, plus
token counting and model lists.

Usage: python_clients.py BASE_URL API_KEY MODEL
Prints one JSON object per case: {"case": ..., "text": ..., "ok": bool, "error": ...}.
Run by proxy/tests/gateway_sdks.rs; the SDK versions are pinned in tests/sdk/requirements.txt.
"""
import json
import sys
import traceback


def case(name, fn):
    try:
        text = fn()
        print(json.dumps({"case": name, "ok": True, "text": text}), flush=True)
    except Exception as e:  # the report names the failing case; the Rust test fails on it
        print(json.dumps({"case": name, "ok": False, "error": f"{type(e).__name__}: {e}",
                          "trace": traceback.format_exc()[-800:]}), flush=True)


def main():
    base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    import openai
    import anthropic
    from google import genai
    from google.genai import types

    oa = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)
    msgs = [{"role": "user", "content": "Say hello"}]

    def chat():
        r = oa.chat.completions.create(model=model, messages=msgs)
        return r.choices[0].message.content

    def chat_stream():
        out = []
        for ev in oa.chat.completions.create(model=model, messages=msgs, stream=True):
            if ev.choices and ev.choices[0].delta.content:
                out.append(ev.choices[0].delta.content)
        return "".join(out)

    def responses():
        return oa.responses.create(model=model, input="Say hello").output_text

    def responses_stream():
        out = []
        with oa.responses.stream(model=model, input="Say hello") as s:
            for ev in s:
                if ev.type == "response.output_text.delta":
                    out.append(ev.delta)
            s.get_final_response()
        return "".join(out)

    an = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)

    def messages():
        r = an.messages.create(model=model, max_tokens=32, messages=msgs)
        return "".join(b.text for b in r.content if b.type == "text")

    def messages_stream():
        with an.messages.stream(model=model, max_tokens=32, messages=msgs) as s:
            text = "".join(s.text_stream)
            s.get_final_message()
        return text

    gm = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base, timeout=30_000))

    def gemini():
        return gm.models.generate_content(model=model, contents="Say hello").text

    def gemini_stream():
        return "".join(c.text or "" for c in gm.models.generate_content_stream(model=model, contents="Say hello"))

    def gemini_count():
        return str(gm.models.count_tokens(model=model, contents="Say hello to the world").total_tokens)

    def gemini_list():
        return ",".join(m.name for m in gm.models.list())

    gm1 = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base, api_version="v1", timeout=30_000))

    def gemini_list_v1():
        return ",".join(m.name for m in gm1.models.list())

    def openai_list():
        return ",".join(m.id for m in oa.models.list())

    def anthropic_count():
        return str(an.messages.count_tokens(model=model, messages=msgs).input_tokens)

    for name, fn in [("openai.chat", chat), ("openai.chat.stream", chat_stream),
                     ("openai.responses", responses), ("openai.responses.stream", responses_stream),
                     ("anthropic.messages", messages), ("anthropic.messages.stream", messages_stream),
                     ("genai.generate", gemini), ("genai.generate.stream", gemini_stream),
                     ("genai.count_tokens", gemini_count), ("anthropic.count_tokens", anthropic_count),
                     ("genai.models.list", gemini_list), ("genai.models.list.v1", gemini_list_v1),
                     ("openai.models.list", openai_list)]:
        case(name, fn)


if __name__ == "__main__":
    main()
