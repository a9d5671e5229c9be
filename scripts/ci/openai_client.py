"""The official OpenAI Python SDK (the `openai` package from PyPI) against the ai service's
OpenAI-compatible API through the gateway, with an Agora credential as its API key: the model
list, a chat completion whole and streamed (with usage), embeddings as the SDK asks for them by
default (base64, which it decodes) and as floats, Agora's `collection_ids` passed as extra
body, and the SDK's own error types for an unknown model and a bad request. With M2V (the
directory scripts/ci/model2vec_models.py wrote, its models configured in the service under
their names), the service's embeddings by Model2Vec's own models must be the vectors
Model2Vec's `encode` gives."""

import json
import os
import sys
import urllib.request

import openai

gateway = os.environ["GATEWAY"]
token = os.environ["ACCESS"]
failures = []


def check(label, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + label + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(label)


def post(path, body):
    req = urllib.request.Request(
        gateway + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


collection = post("/api/v1/ai/collections", {"name": "SDK handbook"})["id"]
post(
    f"/api/v1/ai/collections/{collection}/documents",
    {"title": "Returns", "text": "# Returns\n\nRefunds are paid within five business days."},
)
expected = "Refunds are paid within five business days."

client = openai.OpenAI(base_url=gateway + "/api/v1/ai/openai/v1", api_key=token, max_retries=0)

models = [m.id for m in client.models.list()]
check("models: local is listed", "local" in models, models)

messages = [
    {"role": "system", "content": "Answer from the handbook."},
    {"role": "user", "content": "When are refunds paid?"},
]
chat = client.chat.completions.create(
    model="local", messages=messages, extra_body={"collection_ids": [collection]}
)
check("chat: content", chat.choices[0].message.content == expected, chat.choices[0].message.content)
check("chat: finish reason", chat.choices[0].finish_reason == "stop", chat.choices[0].finish_reason)
check(
    "chat: usage adds up",
    chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens,
    chat.usage,
)

stream = client.chat.completions.create(
    model="local",
    messages=messages,
    stream=True,
    stream_options={"include_usage": True},
    extra_body={"collection_ids": [collection]},
)
pieces, usage, finish = [], None, None
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
check("stream: content", "".join(pieces) == expected, "".join(pieces))
check("stream: finish reason", finish == "stop", finish)
check("stream: usage", usage is not None and usage.total_tokens == chat.usage.total_tokens, usage)

# The SDK asks for base64 unless told otherwise, and decodes it.
default = client.embeddings.create(model="local", input=["refunds", "delivery"])
floats = client.embeddings.create(model="local", input=["refunds", "delivery"], encoding_format="float")
check("embeddings: two vectors of 1024", [len(d.embedding) for d in default.data] == [1024, 1024])
check(
    "embeddings: base64 and floats agree",
    all(abs(a - b) < 1e-6 for a, b in zip(default.data[0].embedding, floats.data[0].embedding)),
)
check("embeddings: usage", default.usage.prompt_tokens > 0, default.usage)

try:
    client.chat.completions.create(model="gpt-9", messages=messages)
    check("unknown model: NotFoundError", False, "no error")
except openai.NotFoundError as e:
    check("unknown model: NotFoundError", e.code == "model_not_found", e.code)

try:
    client.embeddings.create(model="local", input="x", dimensions=5000)
    check("bad request: an error", False, "no error")
except openai.UnprocessableEntityError as e:
    check("bad request: the parameter named", e.param == "dimensions", e.param)

try:
    openai.OpenAI(base_url=gateway + "/api/v1/ai/openai/v1", api_key="wrong", max_retries=0).models.list()
    check("wrong key: AuthenticationError", False, "no error")
except openai.AuthenticationError:
    check("wrong key: AuthenticationError", True)

m2v = os.environ.get("M2V")
if m2v:
    spec = json.load(open(os.path.join(m2v, "expected.json")))
    for name, vectors in spec["vectors"].items():
        check(f"model2vec {name}: listed", name in models or name in [m.id for m in client.models.list()])
        got = client.embeddings.create(model=name, input=spec["sentences"], encoding_format="float")
        worst = max(
            abs(a - b) / max(1.0, abs(b))
            for d, want in zip(got.data, vectors)
            for a, b in zip(d.embedding, want)
        )
        check(
            f"model2vec {name}: {len(vectors)} vectors of {len(vectors[0])} as Model2Vec encodes them",
            [len(d.embedding) for d in got.data] == [len(v) for v in vectors]
            and worst <= spec["tolerance"][name],
            f"largest difference {worst}",
        )
    try:
        client.chat.completions.create(model="m2v", messages=messages)
        check("model2vec: no chat with an embedding model", False, "no error")
    except openai.UnprocessableEntityError as e:
        check("model2vec: no chat with an embedding model", e.param == "model", e.param)

print(f"openai {openai.__version__}: {'all checks passed' if not failures else f'{len(failures)} failed'}")
sys.exit(1 if failures else 0)
