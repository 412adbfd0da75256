// A real socket.io-client@4 (npm) driven by sioapp_test: MODE "default" (polling, then the
// upgrade) or "websocket" (transports: ["websocket"]). Subscribes to TOPIC, receives COUNT
// messages (confirming each with `consumed`), then emits each publish of $PUBLISHES with an
// ack. Prints one line "RESULT <json>".
//   node node_client.mjs URL TOKEN MODE TOPIC COUNT
import { createRequire } from "node:module";
const require = createRequire(process.env.NODE_PATH + "/");
const { io } = require("socket.io-client");

const [url, token, mode, topic, countArg] = process.argv.slice(2);
const count = Number(countArg);
const out = { events: [], missed: [], gaps: [] };
const opts = { auth: { token, consumer: "node-test" }, reconnection: false, timeout: 5000 };
if (mode === "websocket") opts.transports = ["websocket"];
const socket = io(url, opts);
const finish = () => {
  out.transport = socket.io.engine ? socket.io.engine.transport.name : null;
  // stdout on a pipe is asynchronous in Node: exit once the line is written.
  process.stdout.write("RESULT " + JSON.stringify(out) + "\n", () => process.exit(0));
};
// Give up after 20 s without an event (or 180 s in all): a loaded machine makes the client
// slow, not stuck, and a fixed total would fail a client that is still receiving.
const giveUp = () => { out.timeout = true; finish(); };
setTimeout(giveUp, 180000);
let idle = setTimeout(giveUp, 20000);
let resolveDone;
const done = new Promise((r) => (resolveDone = r));
socket.on(topic, (envelope) => {
  out.events.push(envelope);
  idle.refresh();
  socket.emit("consumed", envelope.seq);
  if (out.events.length === count) resolveDone();
});
socket.on("missed", (m) => out.missed.push(m));
socket.on("gap", (g) => out.gaps.push(g));
// The server cut us off (e.g. as a slow client): say so at once instead of timing out.
socket.on("disconnect", (reason) => {
  if (out.events.length < count) { out.disconnect = reason; out.timeout = true; finish(); }
});
socket.on("connect_error", (e) => { out.connect_error = e.message; finish(); });
socket.on("connect", async () => {
  out.subscribe_ack = await socket.timeout(5000).emitWithAck("subscribe", [topic]);
  console.log("SUBSCRIBED");
  if (count > 0) await done;
  out.publish_acks = [];
  for (const p of JSON.parse(process.env.PUBLISHES || "[]")) {
    out.publish_acks.push(await socket.timeout(5000).emitWithAck("publish", p));
  }
  finish();
});
