// Socket.IO's own client (`socket.io-client`, npm) and a plain WebSocket client (`ws`, npm)
// against the realtime service through the gateway at $GATEWAY: handshake auth and
// connect_error, acks, conversations with typing and messages shared with a native client,
// sessions with WebRTC signals to one peer, long-polling alone and upgraded to WebSocket,
// another tenant kept out. Prints one line per check; exits non-zero on the first failure.
import { io } from "socket.io-client";
import WebSocket from "ws";

const B = process.env.GATEWAY;
const run = Date.now();
let failed = false;

function ok(what, cond, detail) {
  if (cond) {
    console.log(`ok   ${what}`);
  } else {
    console.log(`FAIL ${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
    failed = true;
  }
}

async function post(path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(B + path, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function tenant(name) {
  return post("/api/v1/auth/register", {
    email: `admin-${run}@${name.toLowerCase()}.test`,
    password: "Realtime-passw0rd!",
    name: "Admin",
    tenant_name: name,
  });
}

async function member(admin, email) {
  const invited = await post(
    `/api/v1/tenants/${admin.user.tenant_id}/users`,
    { email, name: "Member", role: "TENANT_USER" },
    admin.access_token,
  );
  return post("/api/v1/auth/accept-invite", {
    token: invited.invitation_token,
    password: "Realtime-passw0rd!",
  });
}

/** The next `event` on `socket` (rejects after `ms`). */
function next(socket, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (payload) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

/** Resolves with whatever `event` brings within `ms`, or null. */
function none(socket, event, ms = 700) {
  return new Promise((resolve) => {
    const handler = (payload) => resolve(payload);
    socket.once(event, handler);
    setTimeout(() => {
      socket.off(event, handler);
      resolve(null);
    }, ms);
  });
}

function connect(token, opts = {}) {
  const socket = io(B, { path: "/socket.io/", auth: { token }, reconnection: false, ...opts });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(err));
  });
}

/** A native-protocol client over `ws`: calls with ids, pushes queued. */
async function native(token) {
  const ws = new WebSocket(B.replace("http", "ws") + "/api/v1/realtime/ws");
  const pushes = [];
  const waiting = new Map();
  let wake = null;
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString());
    if (msg.id !== undefined && waiting.has(msg.id)) {
      waiting.get(msg.id)(msg);
      waiting.delete(msg.id);
    } else {
      pushes.push(msg);
      if (wake) wake();
    }
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let id = 0;
  const call = (command) =>
    new Promise((resolve) => {
      id += 1;
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ id, ...command }));
    });
  const push = async (ms = 5000) => {
    const deadline = Date.now() + ms;
    while (pushes.length === 0) {
      if (Date.now() > deadline) throw new Error("no push");
      await new Promise((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
    return pushes.shift();
  };
  const connected = await call({ connect: { token } });
  if (!connected.connected) throw new Error(`native connect: ${JSON.stringify(connected)}`);
  return { ws, call, push, pushes };
}

async function main() {
  const admin = await tenant("SocketIO");
  const peer = await member(admin, `peer-${run}@socketio.test`);
  const stranger = await tenant("Elsewhere");

  // A bad token is a connect_error, not a connection.
  try {
    await connect("not-a-token", { transports: ["websocket"] });
    ok("a bad token is refused", false);
  } catch (err) {
    ok("a bad token is refused with connect_error", /token|credential|unauthori/i.test(err.message), err.message);
  }

  const a = await connect(admin.access_token); // long-polling first, then the upgrade
  const b = await connect(peer.access_token, { transports: ["websocket"] });
  const x = await connect(stranger.access_token, { transports: ["websocket"] });
  ok("clients connect with auth: {token}", a.connected && b.connected && x.connected);

  for (const s of [a, b, x]) {
    const ack = await s.emitWithAck("join_conversation", { conversation_id: "c1" });
    ok("join_conversation is acked {ok: true}", ack.ok === true, ack);
  }
  const n = await native(admin.access_token);
  const sub = await n.call({ subscribe: { channel: "conversation:c1" } });
  ok("a native client subscribes to the same conversation", sub.subscribed?.channel === "conversation:c1", sub);

  // Typing: to the others, with who and whether.
  const typing = next(a, "user_typing");
  b.emit("typing_start", { conversation_id: "c1" });
  const t = await typing;
  ok("typing_start reaches the others as user_typing", t.conversation_id === "c1" && t.user_id === peer.user.id && t.typing === true, t);
  let nt;
  do nt = await n.push(); while (!nt.typing);
  ok("and the native client as a typing push", nt.typing.user_id === peer.user.id, nt);
  const stop = next(a, "user_typing");
  b.emit("typing_stop", { conversation_id: "c1" });
  ok("typing_stop says typing: false", (await stop).typing === false);

  // Another tenant's ticket channel is refused; the tenant's own is not.
  const ticket = await post(
    "/api/v1/tickets",
    { title: "Live", category: "REPAIR", priority: "LOW" },
    admin.access_token,
  );
  const spy = await x.emitWithAck("subscribe", { channel: `ticket:${ticket.id}` });
  ok("another tenant's ticket channel is refused", spy.ok === false && spy.error.code === "not_found", spy);
  const own = await b.emitWithAck("subscribe", { channel: `ticket:${ticket.id}` });
  ok("the tenant's own ticket channel is not", own.ok === true, own);
  const updated = next(b, "ticket.status_changed");
  const patch = await fetch(`${B}/api/v1/tickets/${ticket.id}`, {
    method: "PATCH",
    headers: { "content-type": "application/json", authorization: `Bearer ${admin.access_token}` },
    body: JSON.stringify({ status: "IN_PROGRESS" }),
  });
  ok("the ticket moves", patch.ok, patch.status);
  const change = await updated;
  ok("its subscribers get the ticket's event", change.ticket_id === ticket.id && change.to_status === "IN_PROGRESS" && change.channel === `ticket:${ticket.id}`, change);

  // A message from Socket.IO reaches Socket.IO and native clients, not another tenant.
  const toB = next(b, "new_message");
  const leak = none(x, "new_message");
  const sent = await a.emitWithAck("send_message", { conversation_id: "c1", text: "hello from socket.io" });
  ok("send_message is acked with the message id", sent.ok === true && typeof sent.message_id === "string", sent);
  const m = await toB;
  ok(
    "new_message carries conversation, id, user, text and time",
    m.conversation_id === "c1" && m.message_id === sent.message_id && m.user_id === admin.user.id &&
      m.text === "hello from socket.io" && typeof m.sent_at === "string",
    m,
  );
  let np;
  do np = await n.push(); while (!np.pub);
  ok("the native client gets it as a publication", np.pub.data.text === "hello from socket.io" && np.pub.event === "new_message", np);
  ok("another tenant's same-named conversation hears nothing", (await leak) === null);

  // And back: a native publication reaches Socket.IO clients.
  const fromNative = next(a, "new_message");
  const published = await n.call({ publish: { channel: "conversation:c1", data: { text: "hello from native" } } });
  ok("the native client publishes", published.published?.offset === 2, published);
  const back = await fromNative;
  ok("Socket.IO clients get the native client's message", back.text === "hello from native" && back.user_id === admin.user.id, back);

  // Sessions: messages to everyone, a WebRTC signal to the named peer only.
  for (const s of [a, b]) {
    const ack = await s.emitWithAck("join_session", { session_id: "s1" });
    ok("join_session is acked {ok: true}", ack.ok === true, ack);
  }
  const signal = next(b, "webrtc_signal");
  const notMe = none(a, "webrtc_signal");
  const sAck = await a.emitWithAck("webrtc_signal", { session_id: "s1", to_user_id: peer.user.id, signal: { type: "offer", sdp: "v=0" } });
  ok("webrtc_signal is acked", sAck.ok === true, sAck);
  const sig = await signal;
  ok("webrtc_signal reaches the named peer", sig.session_id === "s1" && sig.from_user_id === admin.user.id && sig.signal.type === "offer", sig);
  ok("and no one else", (await notMe) === null);
  const inSession = next(b, "new_message");
  await a.emitWithAck("send_message", { session_id: "s1", text: "session hello" });
  const sm = await inSession;
  ok("send_message in a session gives new_message with session_id", sm.session_id === "s1" && sm.text === "session hello", sm);
  const left = await b.emitWithAck("leave_session", { session_id: "s1" });
  ok("leave_session is acked", left.ok === true, left);

  // Refusals come back in the ack.
  const refused = await a.emitWithAck("send_message", { session_id: "not-joined", text: "x" });
  ok("a message to a session not joined is refused in the ack", refused.ok === false && refused.error.code === "not_subscribed", refused);
  const unknown = await a.emitWithAck("no_such_event", {});
  ok("an unknown event is refused in the ack", unknown.ok === false && unknown.error.code === "unknown_event", unknown);

  // ping -> pong.
  const pong = next(a, "pong");
  a.emit("ping");
  await pong;
  ok("ping is answered with pong", true);

  // The first client started on long-polling and moved to WebSocket.
  ok("the polling client upgraded to WebSocket", a.io.engine.transport.name === "websocket", a.io.engine.transport.name);

  // Long-polling alone still delivers.
  const p = await connect(peer.access_token, { transports: ["polling"] });
  const pAck = await p.emitWithAck("join_conversation", { conversation_id: "c1" });
  ok("a long-polling client joins", pAck.ok === true, pAck);
  const polled = next(p, "new_message");
  await b.emitWithAck("send_message", { conversation_id: "c1", text: "over polling" });
  ok("and receives messages", (await polled).text === "over polling");

  for (const s of [a, b, x, p]) s.disconnect();
  n.ws.close();
}

main()
  .catch((err) => {
    console.log(`FAIL ${err.stack || err}`);
    failed = true;
  })
  .finally(() => process.exit(failed ? 1 : 0));
