// Renders /openapi.json as a list of operations grouped by tag, with request and response
// schemas. No third-party code: the page works offline and under a strict CSP.
(async () => {
  const root = document.getElementById("api");
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  let doc;
  try {
    doc = await (await fetch("/openapi.json")).json();
  } catch (err) {
    root.textContent = "Could not load /openapi.json: " + err;
    return;
  }
  const groups = {};
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      (groups[tag] = groups[tag] || []).push({ path, method, op });
    }
  }
  root.textContent = "";
  for (const tag of Object.keys(groups).sort()) {
    root.appendChild(el("h2", null, tag));
    for (const { path, method, op } of groups[tag]) {
      const box = el("div", "op");
      box.appendChild(el("span", "m " + method, method));
      box.appendChild(el("code", null, path));
      if (op.summary || op.description) box.appendChild(el("div", "d", op.summary || op.description));
      const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
      const details = el("details");
      details.appendChild(el("summary", null, "request and responses"));
      if (body) details.appendChild(el("pre", null, "request: " + JSON.stringify(body.schema, null, 2)));
      for (const [status, resp] of Object.entries(op.responses || {})) {
        const c = resp.content && resp.content["application/json"];
        details.appendChild(el("pre", null, status + " " + (resp.description || "") + (c ? "\n" + JSON.stringify(c.schema, null, 2) : "")));
      }
      box.appendChild(details);
      root.appendChild(box);
    }
  }
})();
